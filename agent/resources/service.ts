import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { lstat, readFile, rm } from '../files.js';
import { StewardError } from '../errors.js';
import { backupFile, restoreBackup, writeFileAtomic } from '../host/fs.js';
import { ensureRealDir } from '../host/paths.js';
import type { Systemd, UnitState } from '../host/systemd.js';
import type { DesiredService } from '../manifest/bundle.js';
import { canonical, sha } from './container-spec.js';
import type { Change, Health, InventoryEntry, Owned, ResourceDriver } from './driver.js';
import { parseDuration } from '../duration.js';
import { hostExecProbe, probeOnce } from '../host/probe.js';

export interface ObservedService {
  unit: string;
  state: UnitState;
  /** The unit file in the unit directory: its hash, or 'absent', or a refusal (a symlink). */
  file: { sha256?: string; present: boolean; unsafe?: string };
}

const ENABLED = new Set([
  'enabled',
  'enabled-runtime',
  'linked',
  'linked-runtime',
  'alias',
  'indirect',
  'generated',
  'static',
]);
const RUNNING = new Set(['active', 'activating', 'reloading']);
const digest = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const isEnabled = (s: UnitState) => ENABLED.has(s.unitFileState);
const isActive = (s: UnitState) => RUNNING.has(s.activeState);

/**
 * systemd units. Unit files Steward writes go to the unit directory and are owned (inventory);
 * `daemon-reload` runs only when one changed. A unit Steward did not write is managed for
 * `enabled`/`state` only, and when it leaves Git it gets back the state it had before Steward.
 */
export class ServiceDriver implements ResourceDriver<DesiredService, ObservedService> {
  readonly kind = 'Service' as const;

  constructor(
    private readonly systemd: Systemd,
    private readonly stateDir: string,
  ) {}

  #path(unit: string): string {
    return join(this.systemd.unitDir, unit);
  }

  async observe(
    desired: readonly DesiredService[],
    owned: ReadonlyMap<string, InventoryEntry>,
    _signal: AbortSignal,
  ): Promise<Map<string, ObservedService>> {
    const ids = new Map<string, string>(desired.map((d) => [d.id, d.spec.unit]));
    for (const [id, e] of owned) if (!ids.has(id) && e.kind === 'Service' && e.unit) ids.set(id, e.unit);
    const states = await this.systemd.show([...new Set(ids.values())]);
    const out = new Map<string, ObservedService>();
    for (const [id, unit] of ids) out.set(id, { unit, state: states.get(unit)!, file: await this.#file(unit) });
    return out;
  }

  async #file(unit: string): Promise<ObservedService['file']> {
    const path = this.#path(unit);
    const st = await lstat(path).catch(() => undefined);
    if (!st) return { present: false };
    if (!st.isFile())
      return {
        present: true,
        unsafe: `${path} is ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'}; Steward does not replace it`,
      };
    return { present: true, sha256: digest(await readFile(path)) };
  }

  hash(d: DesiredService): string {
    const { dependsOn: _d, restartOn: _r, content: _c, source: _s, ...rest } = d.spec;
    return sha(canonical({ ...rest, data: d.data ? digest(d.data) : undefined }));
  }

  diff(
    desired: DesiredService | undefined,
    o: ObservedService | undefined,
    record: InventoryEntry | undefined,
  ): Change<DesiredService, ObservedService> | undefined {
    const base = {
      id: desired?.id ?? '',
      kind: 'Service' as const,
      ...(desired ? { desired } : {}),
      ...(o ? { observed: o } : {}),
      ...(record ? { record } : {}),
    };
    if (!desired) {
      if (!record) return undefined;
      const what = record.path
        ? 'no longer in Git: stop, disable and remove its unit file'
        : `no longer in Git: back to its state before Steward (${record.original ? `${record.original.enabled ? 'enabled' : 'disabled'}, ${record.original.active ? 'running' : 'stopped'}` : 'unchanged'})`;
      return { ...base, action: 'delete', reasons: [what], drift: false };
    }
    if (!o) return undefined;
    // A spec whose unit changed is a new unit; the old one is pruned by the same change.
    if (record?.unit !== undefined && record.unit !== desired.spec.unit) {
      const fresh = this.diff(desired, o, undefined);
      const move = `unit changed from ${record.unit}: ${record.path ? 'it is stopped, disabled and its unit file removed' : 'it goes back to its state before Steward'}`;
      return {
        ...base,
        action: fresh?.action ?? 'update',
        reasons: [move, ...(fresh?.reasons ?? [])],
        drift: false,
        ...(fresh?.blocked ? { blocked: fresh.blocked } : {}),
      };
    }
    const applied = record?.hash === this.hash(desired);
    const file = unitFileDiff(desired, o, record, applied);
    if (file.blocked)
      return { ...base, action: 'update', reasons: [file.reason ?? ''], drift: false, blocked: file.blocked };
    const fileChange = file.reason !== undefined;
    const state = unitStateDiff(desired, o, fileChange);
    const reasons = [...(file.reason ? [file.reason] : []), ...state.reasons];
    if (reasons.length === 0) return undefined;
    const start = state.start;
    const action = fileChange ? (o.file.present ? 'update' : 'create') : start ? 'start' : 'update';
    return { ...base, action, reasons, drift: applied && record !== undefined };
  }

  async apply(change: Change<DesiredService, ObservedService>): Promise<Owned | undefined> {
    if (change.action === 'delete') {
      await this.#prune(change);
      return undefined;
    }
    if (change.action === 'restart') {
      await this.#restart(change.desired!);
      return undefined;
    }
    const d = change.desired!;
    const o = change.observed!;
    const unit = d.spec.unit;
    const record = change.record?.unit === undefined || change.record.unit === unit ? change.record : undefined;
    if (change.record && !record) {
      const old = change.record.unit!;
      await this.#prune({
        ...change,
        observed: { unit: old, state: (await this.systemd.show([old])).get(old)!, file: await this.#file(old) },
      });
    }
    const owned: Owned = {
      unit,
      ...(record?.path ? { path: record.path } : {}),
      ...(record?.backup ? { backup: record.backup } : {}),
      ...(record?.original ? { original: record.original } : {}),
    };
    if (!d.data && !record) owned.original = { enabled: isEnabled(o.state), active: isActive(o.state) };
    const fileChanged = await this.#writeUnitFile(d, o, record, owned);
    await this.#converge(d, fileChanged ? (await this.systemd.show([unit])).get(unit)! : o.state, fileChanged);
    return owned;
  }

  /** Writes the unit file when it differs (keeping what stood there first); true when it was written. */
  async #writeUnitFile(
    d: DesiredService,
    o: ObservedService,
    record: InventoryEntry | undefined,
    owned: Owned,
  ): Promise<boolean> {
    if (!d.data || o.file.sha256 === digest(d.data)) return false;
    const path = this.#path(d.spec.unit);
    try {
      await ensureRealDir(dirname(path), true, d.id);
      if (o.file.present && !record?.path) owned.backup = await backupFile(this.stateDir, path);
      await writeFileAtomic(path, d.data, { mode: 0o644 });
    } catch (err) {
      if (err instanceof StewardError) throw err;
      throw new StewardError('E_UNIT_WRITE', `cannot write ${path}: ${(err as Error).message}`, {
        resource: d.id,
        cause: err,
      });
    }
    owned.path = path;
    await this.systemd.daemonReload();
    return true;
  }

  /** Enables or disables, then starts, stops or restarts the unit as the spec says. */
  async #converge(d: DesiredService, now: UnitState, fileChanged: boolean): Promise<void> {
    const step = async (
      verb: 'start' | 'stop' | 'restart' | 'enable' | 'disable',
      code: 'E_UNIT_START' | 'E_UNIT_STOP' | 'E_UNIT_ENABLE',
    ) => {
      try {
        await this.systemd.unit(verb, d.spec.unit);
      } catch (err) {
        throw new StewardError(code, (err as Error).message, { resource: d.id, cause: err });
      }
    };
    if (d.spec.enabled === true && !isEnabled(now)) await step('enable', 'E_UNIT_ENABLE');
    if (d.spec.enabled === false && isEnabled(now) && now.unitFileState !== 'static')
      await step('disable', 'E_UNIT_ENABLE');
    if (d.spec.state === 'running') {
      if (fileChanged && isActive(now)) await step('restart', 'E_UNIT_START');
      else if (!isActive(now)) await step('start', 'E_UNIT_START');
      await this.#expectActive(d);
    } else if (d.spec.state === 'stopped' && isActive(now)) await step('stop', 'E_UNIT_STOP');
    else if (fileChanged && isActive(now)) await step('restart', 'E_UNIT_START');
  }

  claims(d: DesiredService): Owned {
    return { unit: d.spec.unit, ...(d.data ? { path: this.#path(d.spec.unit) } : {}) };
  }

  /** A unit with a probe is probed every run; without one, it is read only after a change. */
  liveHealth(d: DesiredService): { probe?: DesiredService['spec']['probe'] } | undefined {
    return d.spec.probe !== undefined ? { probe: d.spec.probe } : undefined;
  }

  async check(d: DesiredService, signal: AbortSignal): Promise<Health> {
    const s = (await this.systemd.show([d.spec.unit])).get(d.spec.unit)!;
    if (d.spec.state === 'stopped')
      return isActive(s)
        ? { state: 'unhealthy', message: `unit is ${s.activeState}`, code: 'E_UNIT_STOP' }
        : { state: 'healthy', message: 'stopped' };
    if (d.spec.state !== 'running') return { state: 'healthy', message: `unit is ${s.activeState}` };
    if (s.activeState === 'activating' || s.activeState === 'reloading')
      return { state: 'starting', message: `unit is ${s.activeState}` };
    if (s.activeState !== 'active')
      return {
        state: 'unhealthy',
        message: `unit is ${s.activeState} (${s.result || s.subState})`,
        code: 'E_UNIT_START',
      };
    const probe = d.spec.probe;
    if (!probe) return { state: 'healthy', message: 'active' };
    const timeoutMs = parseDuration(probe.timeout ?? '5s');
    const r = probe.exec
      ? await hostExecProbe(probe.exec.command, timeoutMs)
      : await probeOnce(probe, timeoutMs, signal);
    return r.ok
      ? { state: 'healthy', message: `active, probe: ${r.message}` }
      : { state: 'starting', message: `probe: ${r.message}`, code: 'E_PROBE_FAILED' };
  }

  async #restart(desired: DesiredService): Promise<void> {
    try {
      await this.systemd.unit('restart', desired.spec.unit);
    } catch (err) {
      throw new StewardError('E_UNIT_START', (err as Error).message, {
        resource: desired.id,
        retry: 'transient',
        cause: err,
      });
    }
    await this.#expectActive(desired);
  }

  /** A started unit must reach active; a unit that fails at once is this resource's failure. */
  async #expectActive(d: DesiredService): Promise<void> {
    for (let i = 0; i < 20; i++) {
      const s = (await this.systemd.show([d.spec.unit])).get(d.spec.unit)!;
      if (s.activeState === 'active') return;
      if (s.activeState === 'failed' || (s.activeState === 'inactive' && i > 0))
        throw new StewardError(
          'E_UNIT_START',
          `unit ${d.spec.unit} is ${s.activeState} after start (${s.result || s.subState})`,
          { resource: d.id, retry: 'transient' },
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async #prune(change: Change<DesiredService, ObservedService>): Promise<void> {
    const rec = change.record!;
    const unit = rec.unit ?? change.observed?.unit;
    if (!unit) return;
    const s = change.observed?.state;
    const quiet = async (verb: 'stop' | 'disable') => this.systemd.unit(verb, unit).catch(() => undefined);
    if (rec.path) {
      if (!s || isActive(s)) await quiet('stop');
      if (!s || isEnabled(s)) await quiet('disable');
      const st = await lstat(rec.path).catch(() => undefined);
      if (st?.isFile()) await rm(rec.path);
      if (rec.backup) await restoreBackup(rec.backup, rec.path);
      await this.systemd.daemonReload();
    } else if (rec.original && s) {
      if (!rec.original.enabled && isEnabled(s)) await quiet('disable');
      if (rec.original.enabled && !isEnabled(s)) await this.systemd.unit('enable', unit).catch(() => undefined);
      if (!rec.original.active && isActive(s)) await quiet('stop');
      if (rec.original.active && !isActive(s)) await this.systemd.unit('start', unit).catch(() => undefined);
    }
  }
}

/** The unit file's part of a diff: why it is written, or why it cannot be. */
function unitFileDiff(
  desired: DesiredService,
  o: ObservedService,
  record: InventoryEntry | undefined,
  applied: boolean,
): { reason?: string; blocked?: StewardError } {
  if (!desired.data) {
    if (o.state.loadState !== 'not-found') return {};
    return {
      reason: 'unit does not exist',
      blocked: new StewardError(
        'E_UNIT_NOT_FOUND',
        `unit ${desired.spec.unit} does not exist on this host and the spec has no content or source`,
        { resource: desired.id },
      ),
    };
  }
  if (o.file.unsafe)
    return {
      reason: 'unit file not safe to write',
      blocked: new StewardError('E_FILE_UNSAFE', o.file.unsafe, { resource: desired.id }),
    };
  if (o.file.sha256 === digest(desired.data)) return {};
  if (!o.file.present)
    return { reason: applied ? 'unit file was removed outside Steward' : 'unit file does not exist' };
  if (!record?.path) return { reason: 'replaces a unit file Steward did not write (the original is kept)' };
  return { reason: applied ? 'unit file was changed outside Steward' : 'unit file changed' };
}

/** The unit's enabled and running part of a diff. */
function unitStateDiff(desired: DesiredService, o: ObservedService, fileChange: boolean) {
  const { enabled, state } = desired.spec;
  const reasons: string[] = [];
  if (enabled === true && !isEnabled(o.state) && !fileChange)
    reasons.push(`unit is ${o.state.unitFileState || 'not enabled'}`);
  if (enabled === false && isEnabled(o.state) && o.state.unitFileState !== 'static') reasons.push('unit is enabled');
  const start = state === 'running' && !isActive(o.state);
  if (start)
    reasons.push(
      `unit is ${o.state.activeState}${o.state.result && o.state.result !== 'success' ? ` (${o.state.result})` : ''}`,
    );
  if (state === 'stopped' && isActive(o.state)) reasons.push(`unit is ${o.state.activeState}`);
  return { reasons, start };
}

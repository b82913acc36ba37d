import type { ContainerInfo, ContainerInspectInfo } from 'dockerode';
import { StewardError } from '../errors.js';
import { dockerMessage, dockerStatus, engineDown, idempotent, isEngineDown, type Docker } from '../host/docker.js';
import type { EngineContainer } from '../host/engine.js';
import type { Fingerprint } from '../host/fingerprint.js';
import { faultPoint } from '../host/fs.js';
import { RegistryAuth, registryOf, type RegistryLogin } from '../config/registry.js';
import type { ContainerSpec } from '../types/container.js';
import type { DesiredContainer } from '../manifest/bundle.js';
import { fieldHashes, LABEL, SHAPING_FIELDS, specHash, toCreateOptions } from './container-spec.js';
import type { ApplyContext, Change, Health, InventoryEntry, ResourceDriver } from './driver.js';
import { monotonicMs, parseDuration } from '../duration.js';
import { probeOnce } from '../host/probe.js';

/** One container as the engine lists it. */
export interface ObservedContainer {
  containerId: string;
  name: string;
  /** Created by Steward for this host. A false here is someone else's container holding the name. */
  owned: boolean;
  state: string;
  health?: 'healthy' | 'unhealthy' | 'starting';
  hash?: string;
  fields: Record<string, string>;
  /** The image reference the container was created from, and the image it runs. */
  image: string;
  imageId: string;
  /** What the desired image reference resolves to locally now; undefined when not present. */
  desiredImageId?: string;
  /** More owned containers claiming the same resource id (left by a crash): removed on recreate. */
  extras: string[];
}

const STOP_SECONDS = 10;

export class ContainerDriver implements ResourceDriver<DesiredContainer, ObservedContainer> {
  readonly kind = 'Container' as const;

  constructor(
    private readonly docker: Docker,
    private readonly host: string,
    private readonly socket: string,
    private readonly fp: Fingerprint,
    private readonly registry: RegistryAuth = RegistryAuth.none,
  ) {}

  async observe(
    desired: readonly DesiredContainer[],
    _owned: ReadonlyMap<string, InventoryEntry>,
    _signal: AbortSignal,
  ): Promise<Map<string, ObservedContainer>> {
    let list: ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true });
    } catch (err) {
      throw isEngineDown(err) ? engineDown(err, this.socket) : err;
    }
    const out = new Map<string, ObservedContainer>();
    const byName = new Map<string, ObservedContainer>();
    for (const c of list) {
      const labels = c.Labels ?? {};
      const owned =
        labels[LABEL.managed] === 'true' && labels[LABEL.host] === this.host && typeof labels[LABEL.id] === 'string';
      const o: ObservedContainer = {
        containerId: c.Id,
        name: (c.Names?.[0] ?? '').replace(/^\//, ''),
        owned,
        state: c.State,
        ...healthOf(c.Status),
        ...(labels[LABEL.hash] ? { hash: labels[LABEL.hash] } : {}),
        fields: parseFields(labels[LABEL.fields]),
        image: c.Image,
        imageId: c.ImageID,
        extras: [],
      };
      if (owned) {
        const id = labels[LABEL.id]!;
        const first = out.get(id);
        if (first) {
          // Keep the running one (or the first) as the resource; the rest are duplicates.
          if (o.state === 'running' && first.state !== 'running') {
            out.set(id, { ...o, extras: [...first.extras, first.containerId] });
          } else first.extras.push(o.containerId);
        } else out.set(id, o);
      }
      byName.set(o.name, o);
    }
    const imageIds = new Map<string, string | undefined>();
    for (const d of desired) {
      if (!imageIds.has(d.spec.image)) imageIds.set(d.spec.image, await this.#imageId(d.spec.image));
      const imageId = imageIds.get(d.spec.image);
      const mine = out.get(d.id);
      if (mine) {
        if (imageId) mine.desiredImageId = imageId;
        continue;
      }
      const squatter = byName.get(d.name);
      if (squatter) out.set(d.id, { ...squatter, owned: false });
    }
    return out;
  }

  hash(desired: DesiredContainer): string {
    return specHash(effectiveSpec(desired), this.fp);
  }

  diff(
    desired: DesiredContainer | undefined,
    observed: ObservedContainer | undefined,
    record: InventoryEntry | undefined,
  ): Change<DesiredContainer, ObservedContainer> | undefined {
    if (!desired) {
      if (!observed?.owned) return undefined;
      return {
        id: `Container/${observed.name}`,
        kind: 'Container',
        action: 'delete',
        reasons: ['no longer in Git'],
        drift: false,
        observed,
      };
    }
    const base = { id: desired.id, kind: 'Container' as const, desired, ...(observed ? { observed } : {}) };
    const applied = record?.hash === this.hash(desired);
    if (!observed)
      return {
        ...base,
        action: 'create',
        reasons: [applied ? 'container was removed outside Steward' : 'container does not exist'],
        drift: applied,
      };
    if (!observed.owned) {
      const blocked = new StewardError(
        'E_CONTAINER_NAME_TAKEN',
        `a container named "${desired.name}" exists and was not created by Steward for this host; it is left alone`,
        { resource: desired.id },
      );
      return {
        ...base,
        action: 'create',
        reasons: ['name is taken by a container Steward does not own'],
        drift: false,
        blocked,
      };
    }
    const reasons = changedFields(desired, observed, this.fp);
    if (
      observed.desiredImageId &&
      observed.desiredImageId !== observed.imageId &&
      !reasons.some((r) => r.startsWith('image '))
    )
      reasons.push(
        `image ${desired.spec.image} now resolves to ${short(observed.desiredImageId)} (was ${short(observed.imageId)})`,
      );
    if (observed.extras.length > 0) reasons.push(`${observed.extras.length} duplicate container(s) for this resource`);
    if (reasons.length > 0)
      return { ...base, action: 'recreate', reasons, drift: applied && observed.hash !== this.hash(desired) };
    if (observed.state !== 'running' && observed.state !== 'restarting')
      return { ...base, action: 'start', reasons: [`container is ${observed.state}`], drift: applied };
    return undefined;
  }

  async apply(
    change: Change<DesiredContainer, ObservedContainer>,
    { revision, signal }: ApplyContext,
  ): Promise<undefined> {
    const { desired, observed } = change;
    try {
      switch (change.action) {
        case 'delete':
          if (observed) await this.#remove(observed.containerId, 'during-prune');
          return;
        case 'start':
          if (observed?.state === 'paused') await this.docker.getContainer(observed.containerId).unpause();
          else {
            try {
              await this.#start(this.docker.getContainer(observed!.containerId));
            } catch (err) {
              if (!isStaleTask(err)) throw err;
              // The engine lost track of this container's task (it was restarted under us):
              // a fresh container from the same spec is the way out. Volumes are kept.
              await this.#remove(observed!.containerId, 'after-container-stop');
              await this.#create(desired!, revision);
              return;
            }
          }
          await this.#checkRunning(desired!, observed!.containerId);
          return;
        case 'create':
        case 'recreate':
        case 'update':
          await this.#ensureImage(desired!, signal);
          if (observed?.owned)
            for (const c of [observed.containerId, ...observed.extras]) await this.#remove(c, 'after-container-stop');
          await this.#create(desired!, revision);
          return;
        case 'restart':
          await this.#restart(desired!);
          return;
      }
    } catch (err) {
      throw this.#wrap(err, change.id, change.action);
    }
  }

  async #restart(desired: DesiredContainer): Promise<void> {
    try {
      await this.docker.getContainer(desired.name).restart({ t: STOP_SECONDS });
    } catch (err) {
      throw this.#wrap(err, desired.id, 'restart');
    }
  }

  /** A probe or a docker healthcheck is read every run; a plain container only after a change. */
  liveHealth(d: DesiredContainer): { probe?: DesiredContainer['spec']['probe'] } | undefined {
    return d.spec.probe !== undefined || d.spec.healthcheck !== undefined ? { probe: d.spec.probe } : undefined;
  }

  async check(d: DesiredContainer, signal: AbortSignal): Promise<Health> {
    let info: ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(d.name).inspect();
    } catch (err) {
      if (dockerStatus(err) === 404)
        return { state: 'unhealthy', message: 'container does not exist', code: 'E_CONTAINER_START' };
      if (isEngineDown(err)) return { state: 'starting', message: engineDown(err, this.socket).message };
      throw err;
    }
    const s = info.State;
    if (s.Restarting) return { state: 'starting', message: `container is restarting (last exit code ${s.ExitCode})` };
    if (!s.Running)
      return {
        state: 'unhealthy',
        message: `container is ${s.Status} (exit code ${s.ExitCode})`,
        code: 'E_CONTAINER_START',
      };
    const hc = (s as { Health?: { Status?: string; FailingStreak?: number } }).Health;
    if (hc?.Status === 'starting') return { state: 'starting', message: 'docker healthcheck: starting' };
    if (hc?.Status === 'unhealthy')
      return {
        state: 'unhealthy',
        message: `docker healthcheck: unhealthy (${hc.FailingStreak ?? 0} failures in a row)`,
        code: 'E_CONTAINER_UNHEALTHY',
      };
    const probe = d.spec.probe;
    if (!probe) return { state: 'healthy', message: hc ? 'running, docker healthcheck: healthy' : 'running' };
    const timeoutMs = parseDuration(probe.timeout ?? '5s');
    const r = probe.exec
      ? await this.#execProbe(info.Id, probe.exec.command, timeoutMs)
      : await probeOnce(probe, timeoutMs, signal);
    return r.ok
      ? { state: 'healthy', message: `running, probe: ${r.message}` }
      : { state: 'starting', message: `probe: ${r.message}`, code: 'E_PROBE_FAILED' };
  }

  /** `docker exec` of a probe command; a command still running at the deadline counts as failed. */
  async #execProbe(containerId: string, cmd: string[], timeoutMs: number): Promise<{ ok: boolean; message: string }> {
    const exec = await this.docker.getContainer(containerId).execDetached(cmd);
    const end = monotonicMs() + timeoutMs;
    while (monotonicMs() < end) {
      const info = await exec.inspect();
      if (!info.Running) return { ok: info.ExitCode === 0, message: `${cmd[0]}: exit ${info.ExitCode}` };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ok: false, message: `${cmd[0]}: no result within ${timeoutMs}ms` };
  }

  async #imageId(ref: string): Promise<string | undefined> {
    try {
      return (await this.docker.getImage(ref).inspect()).Id;
    } catch (err) {
      if (dockerStatus(err) === 404) return undefined;
      throw isEngineDown(err) ? engineDown(err, this.socket) : err;
    }
  }

  /** Pulls when the image is missing or the spec says Always; the old container is untouched until this succeeds. */
  async #ensureImage(desired: DesiredContainer, _signal: AbortSignal): Promise<void> {
    const image = desired.spec.image;
    if ((desired.spec.pull ?? 'IfNotPresent') === 'IfNotPresent' && (await this.#imageId(image))) return;
    let login: RegistryLogin | undefined;
    try {
      login = await this.registry.forImage(image);
    } catch (err) {
      throw new StewardError('E_IMAGE_PULL', `cannot pull image ${image}: ${(err as Error).message}`, {
        resource: desired.id,
        retry: 'transient',
      });
    }
    try {
      await this.docker.pull(image, login ? { authconfig: revealLogin(login) } : {});
    } catch (err) {
      if (isEngineDown(err)) throw engineDown(err, this.socket);
      // The engine's message, without anything of the login; the cause is not kept (its request
      // options carry the encoded credential).
      const message = dockerMessage(err);
      const denied = /no basic auth credentials|unauthorized|authentication required|denied|401/i.test(message);
      const hint = denied
        ? login
          ? ` (the registry refused the credentials docker.authFile has for ${login.serveraddress})`
          : ` (the registry needs a login: docker.authFile has no entry for ${registryOf(image)})`
        : '';
      throw new StewardError('E_IMAGE_PULL', `cannot pull image ${image}: ${message}${hint}`, {
        resource: desired.id,
        retry: 'transient',
      });
    }
  }

  async #create(desired: DesiredContainer, revision: string): Promise<void> {
    let container: EngineContainer;
    try {
      container = await this.docker.createContainer(
        toCreateOptions(desired.name, desired.id, this.host, revision, effectiveSpec(desired), this.fp),
      );
    } catch (err) {
      if (dockerStatus(err) === 409)
        throw new StewardError(
          'E_CONTAINER_NAME_TAKEN',
          `a container named "${desired.name}" appeared that Steward does not own; it is left alone`,
          { resource: desired.id, cause: err },
        );
      throw err;
    }
    faultPoint('after-container-create');
    try {
      await this.#start(container);
    } catch (err) {
      throw new StewardError('E_CONTAINER_START', `created, but it does not start: ${dockerMessage(err)}`, {
        resource: desired.id,
        retry: 'transient',
        cause: err,
      });
    }
    await this.#checkRunning(desired, container.id);
  }

  /**
   * Starts a container; "already started" in any form is success. Right after an engine restart
   * the engine may be starting it itself (restart policy) and answer with an error although the
   * container ends up running: the container's own state decides.
   */
  async #start(container: EngineContainer): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await idempotent(() => container.start(), [304]);
        return;
      } catch (err) {
        await new Promise((r) => setTimeout(r, 500 * attempt));
        const info = await container.inspect().catch(() => undefined);
        if (info?.State.Running) return;
        if (attempt >= 3 || !isStaleTask(err)) throw err;
      }
    }
  }

  async #checkRunning(desired: DesiredContainer, containerId: string): Promise<void> {
    const info = await this.docker.getContainer(containerId).inspect();
    if (!info.State.Running && !info.State.Restarting)
      throw new StewardError(
        'E_CONTAINER_START',
        `container exited right after start (exit code ${info.State.ExitCode}${info.State.Error ? `, ${info.State.Error}` : ''})`,
        { resource: desired.id, retry: 'transient' },
      );
  }

  /** Stops and removes one container; its volumes are kept (never lose data). Gone already is fine. */
  async #remove(containerId: string, fault: string): Promise<void> {
    const c = this.docker.getContainer(containerId);
    await idempotent(() => c.stop({ t: STOP_SECONDS }));
    faultPoint(fault);
    await idempotent(() => c.remove({ v: false, force: true }), [404]);
  }

  #wrap(err: unknown, id: string, action: string): StewardError {
    if (err instanceof StewardError) return err;
    if (isEngineDown(err)) return engineDown(err, this.socket);
    const code =
      action === 'delete'
        ? 'E_CONTAINER_REMOVE'
        : action === 'start' || action === 'restart'
          ? 'E_CONTAINER_START'
          : 'E_CONTAINER_CREATE';
    return new StewardError(code, `${action} failed: ${dockerMessage(err)}`, {
      resource: id,
      retry: 'transient',
      cause: err,
    });
  }
}

/** A container's spec with the values of its envFrom files in env (resolved before anything is applied). */
function effectiveSpec(d: DesiredContainer): ContainerSpec {
  return d.env ? { ...d.spec, env: d.env } : d.spec;
}

function changedFields(desired: DesiredContainer, observed: ObservedContainer, fp: Fingerprint): string[] {
  const spec = effectiveSpec(desired);
  const want = fieldHashes(spec, fp);
  const legacy = fieldHashes(spec);
  const reasons: string[] = [];
  for (const f of SHAPING_FIELDS) {
    if (want[f] === observed.fields[f] || (want[f] !== undefined && legacy[f] === observed.fields[f])) continue;
    if (f === 'image') reasons.push(`image changed (${observed.image} -> ${desired.spec.image})`);
    else if (want[f] === undefined) reasons.push(`${f} removed`);
    else if (observed.fields[f] === undefined) reasons.push(`${f} added`);
    else reasons.push(`${f} changed`);
  }
  return reasons;
}

/** "task ... already exists": containerd kept a task of a container across an engine restart. */
function isStaleTask(err: unknown): boolean {
  return /task .* already exists/.test(dockerMessage(err));
}

function parseFields(text: string | undefined): Record<string, string> {
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v))
      return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    // a label edited by hand: every field counts as changed
  }
  return {};
}

function healthOf(status: string | undefined): { health?: ObservedContainer['health'] } {
  if (!status) return {};
  if (status.includes('(healthy)')) return { health: 'healthy' };
  if (status.includes('(unhealthy)')) return { health: 'unhealthy' };
  if (status.includes('health: starting')) return { health: 'starting' };
  return {};
}

function short(imageId: string): string {
  return imageId.replace(/^sha256:/, '').slice(0, 12);
}

/** The login as the engine takes it (X-Registry-Auth), built only for the pull request itself. */
function revealLogin(login: RegistryLogin) {
  return {
    serveraddress: login.serveraddress,
    ...(login.username ? { username: login.username } : {}),
    ...(login.password ? { password: login.password.reveal() } : {}),
    ...(login.identitytoken ? { identitytoken: login.identitytoken.reveal() } : {}),
  };
}

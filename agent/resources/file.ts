import { dirname } from 'node:path';
import { lstat, rm } from '../files.js';
import { StewardError } from '../errors.js';
import type { Fingerprint } from '../host/fingerprint.js';
import { ContentCache } from '../host/content.js';
import { backupFile, restoreBackup, sweepTemps, syncDir, writeFileAtomic } from '../host/fs.js';
import { ensureRealDir, filePathProblem } from '../host/paths.js';
import { readAccounts } from '../host/users.js';
import type { DesiredFile } from '../manifest/bundle.js';
import { canonical } from './container-spec.js';
import type { Change, Health, InventoryEntry, Owned, ResourceDriver } from './driver.js';

/** One path as lstat sees it, never through a symlink. */
export interface ObservedFile {
  path: string;
  /** 'absent', a regular 'file', or something Steward refuses to touch. */
  type: 'absent' | 'file' | 'symlink' | 'directory' | 'other';
  /** A symlink or non-directory among the parents: nothing below it is touched. */
  unsafe?: string;
  /** The content's keyed fingerprint (host/fingerprint.ts): never a plain hash of a secret. */
  fingerprint?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** The desired owner and group resolved on this host; an error when a name does not exist. */
  want?: { uid?: number; gid?: number; error?: string };
}

export const fileMode = (spec: DesiredFile['spec']): number => parseInt(spec.mode ?? '0644', 8);
const octal = (n: number) => `0${n.toString(8).padStart(3, '0')}`;

/**
 * Files below the configured roots. Content is never logged or reported: its hash is. Steward
 * deletes only files it wrote (the inventory holds their paths); a file that stood where
 * Steward writes is kept under stateDir/backup and put back when the resource is pruned.
 */
type ChangeBase = Pick<Change<DesiredFile, ObservedFile>, 'id' | 'kind' | 'desired' | 'observed' | 'record'>;

export class FileDriver implements ResourceDriver<DesiredFile, ObservedFile> {
  readonly kind = 'File' as const;

  constructor(
    private readonly stateDir: string,
    /** Where File resources may write (files.roots) and Steward's own paths they never may. */
    private readonly paths: { roots: readonly string[]; forbidden: readonly string[] },
    private readonly fp: Fingerprint,
  ) {}

  /** Fingerprints of the files on the host, read again only when a file's stat moved. */
  readonly #files = new ContentCache(() => this.fp.hasher(64));
  /** Per desired File (a kept bundle's objects do not change): its hash and content fingerprint. */
  readonly #hashes = new WeakMap<DesiredFile, string>();
  readonly #wants = new WeakMap<DesiredFile, string>();

  /** The content's fingerprint, shown shortened in reasons ("content changed (fingerprint a1b2… -> c3d4…)"). */
  #content(data: Uint8Array | undefined): string {
    return this.fp.of(data ?? Buffer.alloc(0), 64);
  }

  /** The fingerprint of the content `d` wants. */
  #want(d: DesiredFile): string {
    let want = this.#wants.get(d);
    if (want === undefined) this.#wants.set(d, (want = this.#content(d.data)));
    return want;
  }

  /** A path outside the roots, or one of Steward's own files, rejects the bundle before anything is applied. */
  admit(d: DesiredFile): { pointer: string; message: string } | undefined {
    const problem = filePathProblem(d.spec.path, this.paths.roots, this.paths.forbidden);
    return problem ? { pointer: '/spec/path', message: `path ${JSON.stringify(d.spec.path)} ${problem}` } : undefined;
  }

  async observe(
    desired: readonly DesiredFile[],
    owned: ReadonlyMap<string, InventoryEntry>,
    _signal: AbortSignal,
  ): Promise<Map<string, ObservedFile>> {
    const out = new Map<string, ObservedFile>();
    this.#files.pass();
    const dirs = new Map<string, Promise<boolean>>(); // each parent folder checked once per pass
    const accounts = desired.some((d) => d.spec.owner || d.spec.group) ? await readAccounts() : undefined;
    for (const d of desired) {
      const o = await this.#look(d.spec.path, dirs);
      if (accounts && (d.spec.owner || d.spec.group)) {
        const uid = d.spec.owner ? accounts.uid(d.spec.owner) : undefined;
        const gid = d.spec.group ? accounts.gid(d.spec.group) : undefined;
        const error =
          d.spec.owner && uid === undefined
            ? `user "${d.spec.owner}" does not exist on this host`
            : d.spec.group && gid === undefined
              ? `group "${d.spec.group}" does not exist on this host`
              : undefined;
        o.want = {
          ...(uid !== undefined ? { uid } : {}),
          ...(gid !== undefined ? { gid } : {}),
          ...(error ? { error } : {}),
        };
      }
      out.set(d.id, o);
    }
    for (const [id, entry] of owned)
      if (!out.has(id) && entry.kind === 'File' && entry.path) out.set(id, await this.#look(entry.path, dirs));
    return out;
  }

  async #look(path: string, dirs?: Map<string, Promise<boolean>>): Promise<ObservedFile> {
    try {
      const dir = dirname(path);
      let real = dirs?.get(dir);
      if (!real) {
        real = ensureRealDir(dir, false);
        dirs?.set(dir, real);
      }
      await real;
    } catch (err) {
      return { path, type: 'absent', unsafe: (err as Error).message };
    }
    const statAt = Date.now();
    const st = await lstat(path).catch(() => undefined);
    if (!st) return { path, type: 'absent' };
    if (st.isSymbolicLink())
      return { path, type: 'symlink', unsafe: `${path} is a symlink; Steward does not follow symlinks` };
    if (st.isDirectory()) return { path, type: 'directory', unsafe: `${path} is a directory` };
    if (!st.isFile()) return { path, type: 'other', unsafe: `${path} is not a regular file` };
    return {
      path,
      type: 'file',
      fingerprint: await this.#files.of(path, st, statAt),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
    };
  }

  hash(d: DesiredFile): string {
    let hash = this.#hashes.get(d);
    if (hash !== undefined) return hash;
    const { dependsOn: _d, restartOn: _r, content: _c, source: _s, ...rest } = d.spec;
    hash = this.fp.of(canonical({ ...rest, data: d.data ? this.#want(d) : undefined }));
    this.#hashes.set(d, hash);
    return hash;
  }

  diff(
    desired: DesiredFile | undefined,
    o: ObservedFile | undefined,
    record: InventoryEntry | undefined,
  ): Change<DesiredFile, ObservedFile> | undefined {
    const base: ChangeBase = {
      id: desired?.id ?? '',
      kind: 'File' as const,
      ...(desired ? { desired } : {}),
      ...(o ? { observed: o } : {}),
      ...(record ? { record } : {}),
    };
    if (!desired || desired.spec.ensure === 'absent') return this.#diffAbsent(base, desired, o, record);
    // The inventory's path is the file Steward wrote. A spec whose path changed is a new file
    // at the new path (with the backup of whatever stood there) and a delete of the old one.
    const moved = record?.path !== undefined && record.path !== desired.spec.path ? record.path : undefined;
    const owns = record?.path !== undefined && !moved;
    const applied = !moved && record?.hash === this.hash(desired);
    const move = moved
      ? [
          `path changed from ${moved}: that file is deleted${record?.backup ? ' and the file it replaced restored' : ''}`,
        ]
      : [];
    if (o?.unsafe)
      return {
        ...base,
        action: 'update',
        reasons: ['the path is not safe to write'],
        drift: false,
        blocked: new StewardError('E_FILE_UNSAFE', o.unsafe, { resource: desired.id }),
      };
    if (o?.want?.error)
      return {
        ...base,
        action: 'update',
        reasons: ['owner or group unknown'],
        drift: false,
        blocked: new StewardError('E_FILE_OWNER', o.want.error, { resource: desired.id }),
      };
    if (!o || o.type === 'absent')
      return {
        ...base,
        action: 'create',
        reasons: [
          ...move,
          `${applied ? 'file was removed outside Steward' : 'file does not exist'} (fingerprint ${this.#want(desired).slice(0, 12)})`,
        ],
        drift: applied,
      };
    const reasons = [...move, ...differences(desired, o, owns, applied, this.#want(desired))];
    // A file at a new path that already holds the content is still taken over (backed up) and
    // the old path deleted: only the reasons differ.
    if (moved && reasons.length === move.length)
      reasons.push('replaces a file Steward did not write with the same content (the original is kept)');
    if (reasons.length === 0) return undefined;
    return { ...base, action: 'update', reasons, drift: applied };
  }

  /** A File that left Git or says `ensure: absent`: deleted only when Steward wrote it and the path is safe. */
  #diffAbsent(
    base: ChangeBase,
    desired: DesiredFile | undefined,
    o: ObservedFile | undefined,
    record: InventoryEntry | undefined,
  ): Change<DesiredFile, ObservedFile> | undefined {
    if (o?.unsafe && record?.path)
      return {
        ...base,
        action: 'delete',
        reasons: [desired ? 'ensure: absent' : 'no longer in Git'],
        drift: false,
        blocked: new StewardError('E_FILE_UNSAFE', `${o.unsafe}; ${record.path} is not deleted`, {
          resource: base.id,
        }),
      };
    if (!o || o.type === 'absent')
      return !desired && record
        ? { ...base, action: 'delete', reasons: ['no longer in Git (already gone)'], drift: false }
        : undefined;
    if (!record?.path)
      return {
        ...base,
        action: 'delete',
        reasons: ['ensure: absent'],
        drift: false,
        blocked: new StewardError(
          'E_FILE_NOT_OWNED',
          `${o.path} exists but was not written by Steward; it is not deleted`,
          { resource: desired!.id },
        ),
      };
    return { ...base, action: 'delete', reasons: [desired ? 'ensure: absent' : 'no longer in Git'], drift: false };
  }

  async apply(change: Change<DesiredFile, ObservedFile>): Promise<Owned | undefined> {
    try {
      if (change.action === 'delete') return await this.#delete(change);
      const d = change.desired!;
      const path = d.spec.path;
      await ensureRealDir(dirname(path), true, d.id);
      const prior = change.record?.path === path ? change.record : undefined;
      const owned: Owned = { path, ...(prior?.backup ? { backup: prior.backup } : {}) };
      if (!prior && change.observed?.type === 'file') owned.backup = await backupFile(this.stateDir, path);
      const want = change.observed?.want;
      await writeFileAtomic(path, d.data ?? Buffer.alloc(0), {
        mode: fileMode(d.spec),
        ...(want?.uid !== undefined ? { uid: want.uid } : {}),
        ...(want?.gid !== undefined ? { gid: want.gid } : {}),
      });
      // The old path goes only once the new one is written: a failure above leaves it owned.
      if (change.record?.path && !prior) await this.#delete(change);
      return owned;
    } catch (err) {
      if (err instanceof StewardError) throw err;
      const hint =
        (err as NodeJS.ErrnoException).code === 'EROFS'
          ? ' (under systemd, the file roots must be in the unit’s ReadWritePaths: run steward enroll again, or add a drop-in)'
          : '';
      throw new StewardError(
        'E_FILE_WRITE',
        `${change.action} ${change.desired?.spec.path ?? change.record?.path}: ${(err as Error).message}${hint}`,
        { resource: change.id, retry: 'transient', cause: err },
      );
    }
  }

  claims(d: DesiredFile): Owned {
    return { path: d.spec.path };
  }

  /** A file is healthy when it holds what was written; files have nothing running to probe. */
  async check(d: DesiredFile): Promise<Health> {
    if (d.spec.ensure === 'absent') return { state: 'healthy', message: 'absent' };
    const o = await this.#look(d.spec.path);
    const ok = o.type === 'file' && o.fingerprint === this.#want(d);
    return ok
      ? { state: 'healthy', message: 'content matches' }
      : { state: 'unhealthy', message: `${d.spec.path} does not hold the written content`, code: 'E_FILE_WRITE' };
  }

  async #delete(change: Change<DesiredFile, ObservedFile>): Promise<Owned | undefined> {
    const path = change.record?.path;
    if (!path) return undefined;
    if (await ensureRealDir(dirname(path), false, change.id)) {
      const st = await lstat(path).catch(() => undefined);
      if (st?.isFile()) await rm(path);
      else if (st)
        throw new StewardError('E_FILE_UNSAFE', `${path} is no longer a regular file; not deleted`, {
          resource: change.id,
        });
      await sweepTemps(path);
      if (change.record?.backup) await restoreBackup(change.record.backup, path);
      await syncDir(dirname(path)).catch(() => undefined);
    }
    return undefined;
  }
}

/** What differs between a File's spec and the file on the host, as readable reasons. */
function differences(desired: DesiredFile, o: ObservedFile, owns: boolean, applied: boolean, want: string): string[] {
  const reasons: string[] = [];
  if (o.fingerprint !== want) {
    const what = owns
      ? applied
        ? 'content was changed outside Steward'
        : 'content changed'
      : 'replaces a file Steward did not write (the original is kept)';
    reasons.push(`${what} (fingerprint ${o.fingerprint?.slice(0, 12)} -> ${want.slice(0, 12)})`);
  }
  const mode = fileMode(desired.spec);
  if (o.mode !== mode) reasons.push(`mode ${octal(o.mode ?? 0)} -> ${octal(mode)}`);
  if (o.want?.uid !== undefined && o.uid !== o.want.uid) reasons.push(`owner ${o.uid} -> ${o.want.uid}`);
  if (o.want?.gid !== undefined && o.gid !== o.want.gid) reasons.push(`group ${o.gid} -> ${o.want.gid}`);
  return reasons;
}

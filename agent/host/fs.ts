import { basename, dirname, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from '../files.js';

/**
 * Temp files are `.stw-<8 hex of the target's name>-<8 random hex>`: 22 bytes whatever the
 * target's name, so a name the filesystem takes (up to 255 bytes) always has a temp name too.
 * Earlier versions used `.<name>.steward-tmp-<random>`; those are swept as well.
 */
const tempPrefix = (name: string) => `.stw-${createHash('sha256').update(name).digest('hex').slice(0, 8)}-`;
const LEGACY_MARK = '.steward-tmp-';

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * Writes a file so that a crash or a full disk leaves either the old or the new content, never
 * a mix: temp file in the same directory (mode and owner set before it is visible), write,
 * fsync, rename, fsync of the directory. A failed write removes its temp file and leaves the
 * old file as it was. Temp files left by a crash (kill -9) are removed by the next write.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  await sweepTemps(path);
  const tmp = join(dir, `${tempPrefix(basename(path))}${randomBytes(4).toString('hex')}`);
  const mode = opts.mode ?? 0o600;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      // Mode and owner before the first byte: a secret is never readable by more than it should be.
      await fh.chmod(mode); // the umask does not get a say
      if (opts.uid !== undefined || opts.gid !== undefined) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    faultPoint('after-temp-write');
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/** Removes temp files a crashed write of `path` left beside it. */
export async function sweepTemps(path: string): Promise<number> {
  const dir = dirname(path);
  const prefixes = [tempPrefix(basename(path)), `.${basename(path)}${LEGACY_MARK}`];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    if (!prefixes.some((p) => n.startsWith(p))) continue;
    const st = await lstat(join(dir, n)).catch(() => undefined);
    if (st?.isFile()) {
      await rm(join(dir, n), { force: true });
      removed += 1;
    }
  }
  return removed;
}

export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Crash injection for the crash-safety tests: with STEWARD_FAULT=<point> the process kills itself
 * with SIGKILL at that point. A real kill -9 cannot be aimed between two syscalls; this can.
 */
export function faultPoint(point: string): void {
  if (process.env.STEWARD_FAULT === point) process.kill(process.pid, 'SIGKILL');
}

/** Reads a JSON state file; undefined when it does not exist. A corrupt file throws. */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as unknown;
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Keeps a copy of a file Steward is about to replace (not one it wrote) under
 * `stateDir/backup/<path>`, with the file's mode and owner; returns where. A copy already there
 * is kept: it was made before an earlier first write that a crash cut off before the inventory
 * recorded it, so it holds the original and what stands at `path` now is Steward's.
 */
export async function backupFile(stateDir: string, path: string): Promise<string> {
  const to = join(stateDir, 'backup', path);
  if (
    await lstat(to).then(
      (st) => st.isFile(),
      () => false,
    )
  )
    return to;
  await mkdir(dirname(to), { recursive: true, mode: 0o700 });
  const st = await lstat(path);
  // Atomic like every other write: a crash never leaves a half copy that would then be kept.
  await writeFileAtomic(to, await readFile(path), { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  return to;
}

/** Puts a `backupFile` copy back at `path` (atomically, mode and owner kept) and drops the copy. A missing copy is no error. */
export async function restoreBackup(backup: string, path: string): Promise<void> {
  const original = await readFile(backup).catch(() => undefined);
  const st = await lstat(backup).catch(() => undefined);
  if (!original || !st) return;
  await writeFileAtomic(path, original, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  await rm(backup, { force: true });
}

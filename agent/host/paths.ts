import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { lstat, mkdir } from '../files.js';
import { StewardError } from '../errors.js';

/** Is `path` the same as `dir` or inside it? Both absolute and normalized. */
export function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Checks a File path from a manifest against the host's rules. Pure: returns the problem, or
 * undefined when the path may be written. `forbidden` are Steward's own config, state,
 * credentials and unit files, which no manifest may touch even below a root.
 */
export function filePathProblem(
  path: string,
  roots: readonly string[],
  forbidden: readonly string[],
): string | undefined {
  if (path.includes('\0')) return 'must not contain a NUL byte';
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (path.split('/').includes('..')) return 'must not contain ".."';
  const normal = posix.normalize(path);
  if (normal !== path || (path.length > 1 && path.endsWith('/')))
    return `must be normalized (no ".", "//" or trailing "/"): ${JSON.stringify(normal.replace(/(.)\/$/, '$1'))}`;
  if (roots.length === 0) return 'no files.roots are configured on this host, so File resources may not write anywhere';
  if (!roots.some((r) => isWithin(path, r) && path !== r))
    return `is not below any of the configured files.roots (${roots.join(', ')})`;
  const hit = forbidden.find((f) => isWithin(path, f) || isWithin(f, path));
  if (hit) return `is Steward's own file or folder (${hit}) and may not be managed`;
  return undefined;
}

/**
 * Walks from `/` to `dir` without following anything: every existing component must be a real
 * directory, never a symlink. Missing components are created (mode 0755) when `create` is set.
 * The check and the later write are separate calls, so this guards against planted links, not
 * against a concurrent attacker with write access to the roots.
 */
export async function ensureRealDir(dir: string, create: boolean, resource?: string): Promise<boolean> {
  let at = '/';
  for (const part of dir.split('/').filter(Boolean)) {
    at = posix.join(at, part);
    const st = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) {
      if (!create) return false;
      await mkdir(at, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink())
      throw new StewardError('E_FILE_UNSAFE', `${at} is a symlink; Steward does not follow symlinks`, {
        ...(resource ? { resource } : {}),
      });
    if (!st.isDirectory())
      throw new StewardError('E_FILE_UNSAFE', `${at} is not a directory`, { ...(resource ? { resource } : {}) });
  }
  return true;
}

/**
 * The real absolute spelling of `path`: relative to the working directory, every symlink in its
 * existing part resolved (the rest, not there yet, appended as written). Steward's own files are
 * compared in this form, so another spelling (a relative --config, a stateDir reached through a
 * symlink) cannot slip past the check.
 */
export function realPathOf(path: string): string {
  let head = posix.resolve(path);
  const tail: string[] = [];
  for (;;) {
    try {
      return posix.join(realpathSync(head), ...tail.reverse());
    } catch {
      if (head === '/') return posix.resolve(path);
      tail.push(posix.basename(head));
      head = posix.dirname(head);
    }
  }
}

import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { StewardError } from '../errors.js';
import { decodeManifest } from '../manifest/text.js';

/** A manifest file's text with its repository-relative path. */
export interface ManifestFile {
  path: string;
  text: string;
}

/** What a commit holds under the host's paths, plus a way to read other files of the commit. */
export interface CommitFiles {
  files: ManifestFile[];
  /** Assigned paths that do not exist at this commit (not an error: a host may have none yet). */
  missing: string[];
  errors: StewardError[];
}

export const MANIFEST_RE = /\.(ya?ml|json)$/i;

/**
 * Reads every manifest below `paths` at `commit`, straight from Git objects (no checkout).
 * Symlinks and submodules are refused with an error naming the entry: a symlink in a fleet repo
 * could point anywhere on the host, and a submodule is content this host never fetched.
 */
export async function readManifests(gitdir: string, commit: string, paths: string[], cache: object = {}): Promise<CommitFiles> {
  const out: CommitFiles = { files: [], missing: [], errors: [] };
  const seen = new Set<string>();
  for (const root of paths) {
    let entries;
    try {
      entries = await git.readTree({ fs, gitdir, oid: commit, filepath: root, cache });
    } catch (err) {
      if ((err as Error).name === 'NotFoundError' || (err as Error).name === 'ObjectTypeError') {
        if (root !== '' && (await isBlob(gitdir, commit, root, cache))) await addFile(root, root);
        else out.missing.push(root);
        continue;
      }
      throw err;
    }
    await walk(root, entries.tree);
  }
  out.files.sort((a, b) => a.path.localeCompare(b.path));
  return out;

  async function walk(dir: string, tree: Array<{ mode: string; path: string; oid: string; type: string }>): Promise<void> {
    for (const entry of tree) {
      const path = dir === '' ? entry.path : `${dir}/${entry.path}`;
      if (entry.mode === '120000') {
        out.errors.push(new StewardError('E_MANIFEST_ENTRY', 'symlinks are not allowed in the assigned paths', { file: path }));
        continue;
      }
      if (entry.type === 'commit') {
        out.errors.push(new StewardError('E_MANIFEST_ENTRY', 'submodules are not allowed in the assigned paths', { file: path }));
        continue;
      }
      if (entry.type === 'tree') {
        const sub = await git.readTree({ fs, gitdir, oid: entry.oid, cache });
        await walk(path, sub.tree);
      } else if (entry.type === 'blob' && MANIFEST_RE.test(entry.path)) {
        await addFile(path, path, entry.oid);
      }
    }
  }

  async function addFile(path: string, filepath: string, oid?: string): Promise<void> {
    if (seen.has(path)) return;
    seen.add(path);
    const { blob } = oid ? await git.readBlob({ fs, gitdir, oid, cache }) : await git.readBlob({ fs, gitdir, oid: commit, filepath, cache });
    const decoded = decodeManifest(path, blob);
    if ('error' in decoded) out.errors.push(decoded.error);
    else out.files.push({ path, text: decoded.text });
  }
}

async function isBlob(gitdir: string, commit: string, filepath: string, cache: object): Promise<boolean> {
  try {
    await git.readBlob({ fs, gitdir, oid: commit, filepath, cache });
    return MANIFEST_RE.test(filepath);
  } catch {
    return false;
  }
}

/** Reads one file of the commit (a File resource's `source`), refusing symlinks. */
export async function readRepoFile(gitdir: string, commit: string, path: string, cache: object = {}): Promise<Buffer> {
  const slash = path.lastIndexOf('/');
  const dir = slash < 0 ? '' : path.slice(0, slash);
  const name = path.slice(slash + 1);
  const { tree } = await git.readTree({ fs, gitdir, oid: commit, filepath: dir, cache });
  const entry = tree.find((e) => e.path === name);
  if (!entry) throw new Error(`${path} does not exist at this commit`);
  if (entry.mode === '120000') throw new Error(`${path} is a symlink`);
  if (entry.type !== 'blob') throw new Error(`${path} is not a file`);
  const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
  return Buffer.from(blob);
}

import { StewardError } from '../errors.js';
import { decodeManifest } from '../manifest/text.js';
import type { ObjectStore, TreeEntry } from './objects.js';
import { compareText } from '../order.js';

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
 * The fleet's control files, never manifests even inside an assigned path: `hosts/<host>/suspend.yaml`
 * suspends or pins a host, `rollout.yaml` at the root suspends or pins a selector (README
 * "Suspending a host").
 */
export const CONTROL_FILE_RE = /^(hosts\/[^/]+\/suspend\.yaml|rollout\.yaml)$/;
export const suspendFile = (host: string): string => `hosts/${host}/suspend.yaml`;

/**
 * Reads every manifest below `paths` at `commit`, straight from Git objects (no checkout).
 * Symlinks and submodules are refused with an error naming the entry: a symlink in a fleet repo
 * could point anywhere on the host, and a submodule is content this host never fetched.
 */
export async function readManifests(store: ObjectStore, commit: string, paths: string[]): Promise<CommitFiles> {
  const out: CommitFiles = { files: [], missing: [], errors: [] };
  const seen = new Set<string>();
  for (const root of paths) {
    const entry = await store.resolvePath(commit, root);
    if (!entry) out.missing.push(root);
    else if (entry.type === 'tree') await walk(root, await store.readTree(entry.oid));
    else if (refused(root, entry)) continue;
    else if (MANIFEST_RE.test(root)) await addFile(root, entry.oid);
    else out.missing.push(root);
  }
  out.files.sort((a, b) => compareText(a.path, b.path));
  return out;

  function refused(path: string, entry: TreeEntry): boolean {
    if (entry.mode === '120000')
      out.errors.push(
        new StewardError('E_MANIFEST_ENTRY', 'symlinks are not allowed in the assigned paths', { file: path }),
      );
    else if (entry.type === 'commit')
      out.errors.push(
        new StewardError('E_MANIFEST_ENTRY', 'submodules are not allowed in the assigned paths', { file: path }),
      );
    else return false;
    return true;
  }

  async function walk(dir: string, tree: TreeEntry[]): Promise<void> {
    for (const entry of tree) {
      const path = dir === '' ? entry.path : `${dir}/${entry.path}`;
      if (refused(path, entry)) continue;
      if (entry.type === 'tree') await walk(path, await store.readTree(entry.oid));
      else if (MANIFEST_RE.test(entry.path) && !CONTROL_FILE_RE.test(path)) await addFile(path, entry.oid);
    }
  }

  async function addFile(path: string, oid: string): Promise<void> {
    if (seen.has(path)) return;
    seen.add(path);
    const decoded = decodeManifest(path, await store.readBlob(oid));
    if ('error' in decoded) out.errors.push(decoded.error);
    else out.files.push({ path, text: decoded.text });
  }
}

/** Reads one file of the commit (a File resource's `source`), refusing symlinks. */
export async function readRepoFile(store: ObjectStore, commit: string, path: string): Promise<Buffer> {
  const entry = await store.resolvePath(commit, path);
  if (!entry) throw new Error(`${path} does not exist at this commit`);
  if (entry.mode === '120000') throw new Error(`${path} is a symlink`);
  if (entry.type !== 'blob') throw new Error(`${path} is not a file`);
  return store.readBlob(entry.oid);
}

import { join, relative, resolve } from 'node:path';
import { lstat, readdir, readFile } from '../files.js';
import { SecretKeys } from '../config/keys.js';
import { normalizeRepoPath } from '../config/load.js';
import { formatError, StewardError } from '../errors.js';
import { buildBundle } from '../manifest/bundle.js';
import { MAX_ROLLOUT_BYTES, readRollout, ROLLOUT_FILE } from '../manifest/rollout.js';
import { decodeManifest, MAX_MANIFEST_BYTES } from '../manifest/text.js';
import { resolveBundle } from '../reconcile/resolve.js';
import { MANIFEST_RE, CONTROL_FILE_RE, type ManifestFile } from '../source/tree.js';
import { args, type ExitCode, type Io } from './common.js';
import { compareText } from '../order.js';

export const help =
  'steward validate [DIR] [--path P]... [--age-key-file F] [--pgp-key-file F]   check the manifests of a checkout (exit 0, or 2 with the errors)';

/**
 * The same checks a host runs on a commit, on a checkout: every manifest under DIR (or under the
 * given --path folders, as one host's bundle) must parse and validate, ids must be unique and
 * dependencies must exist. Symlinks are refused as they are in Git.
 */
export async function validate(argv: string[], io: Io): Promise<ExitCode> {
  const { values, positionals } = args(
    argv,
    {
      path: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'age-key-file': { type: 'string' },
      'pgp-key-file': { type: 'string' },
    },
    1,
  );
  const dir = resolve(positionals[0] ?? '.');
  const roots = (values.path ?? ['']).map((p) => {
    try {
      return normalizeRepoPath(p);
    } catch (err) {
      throw new StewardError('E_ARGS', `--path ${(err as Error).message}`);
    }
  });
  const files: ManifestFile[] = [];
  const errors: StewardError[] = [];
  for (const root of roots) await walk(dir, join(dir, root), files, errors);
  errors.push(...(await checkRollout(dir)));
  const { bundle, errors: bundleErrors } = buildBundle('0'.repeat(40), files);
  errors.push(...bundleErrors);
  // The files resources take from the checkout (source, envFrom): read, and SOPS files checked,
  // decrypted in full when a key is given (nothing decrypted is printed).
  if (bundle) errors.push(...(await resolveBundle(bundle, {}, checkoutReader(dir), await keysFrom(values))));
  if (values.json)
    io.out(
      JSON.stringify(
        {
          valid: errors.length === 0,
          files: files.length,
          resources: bundle?.resources.map((r) => r.id) ?? [],
          errors: errors.map((e) => e.toJSON()),
        },
        null,
        2,
      ),
    );
  else if (errors.length > 0) for (const e of errors) io.err(formatError(e));
  else io.out(`valid: ${bundle!.resources.length} resource(s) in ${files.length} file(s)`);
  return errors.length > 0 ? 2 : 0;
}

/** rollout.yaml at the checkout's root, read as a host reads it: each problem names its field. */
async function checkRollout(dir: string): Promise<StewardError[]> {
  const st = await lstat(join(dir, ROLLOUT_FILE)).catch(() => undefined);
  if (!st) return [];
  const at = { file: ROLLOUT_FILE };
  if (!st.isFile()) return [new StewardError('E_MANIFEST_ENTRY', 'must be a regular file', at)];
  if (st.size > MAX_ROLLOUT_BYTES)
    return [new StewardError('E_MANIFEST_PARSE', `file is larger than ${MAX_ROLLOUT_BYTES} bytes (${st.size})`, at)];
  const { problems } = readRollout(await readFile(join(dir, ROLLOUT_FILE), 'utf8'));
  return problems.map((p) => new StewardError('E_MANIFEST_INVALID', p, at));
}

async function keysFrom(values: { 'age-key-file'?: string; 'pgp-key-file'?: string }) {
  const age = values['age-key-file'];
  const pgp = values['pgp-key-file'];
  if (!age && !pgp) return 'structure' as const;
  const secrets = { ...(age ? { ageKeyFile: resolve(age) } : {}), ...(pgp ? { pgpKeyFile: resolve(pgp) } : {}) };
  return SecretKeys.load({ file: '(command line)', secrets });
}

/** The largest source file read from a checkout (a host is bounded by source.maxPackSize). */
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

/** A file of the checkout by repository path: a regular file inside DIR, never through a symlink. */
function checkoutReader(dir: string) {
  return async (path: string): Promise<Buffer> => {
    let at = dir;
    for (const part of path.split('/')) {
      at = join(at, part);
      const st = await lstat(at).catch(() => undefined);
      if (!st) throw new Error(`${path} does not exist in the checkout`);
      if (st.isSymbolicLink()) throw new Error(`${path} goes through a symlink`);
    }
    const st = await lstat(at);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.size > MAX_SOURCE_BYTES) throw new Error(`${path} is larger than ${MAX_SOURCE_BYTES} bytes`);
    return readFile(at);
  };
}

async function walk(top: string, dir: string, files: ManifestFile[], errors: StewardError[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    errors.push(
      new StewardError(
        'E_ARGS',
        `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ),
    );
    return;
  }
  for (const e of entries.sort((a, b) => compareText(a.name, b.name))) {
    const path = join(dir, e.name);
    const rel = relative(top, path);
    if (e.name === '.git' || e.name === 'node_modules' || CONTROL_FILE_RE.test(rel)) continue;
    const st = await lstat(path);
    if (st.isSymbolicLink())
      errors.push(
        new StewardError('E_MANIFEST_ENTRY', 'symlinks are not allowed in the assigned paths', { file: rel }),
      );
    else if (st.isDirectory()) await walk(top, path, files, errors);
    else if (st.isFile() && MANIFEST_RE.test(e.name)) {
      // The host's limit, checked before reading: a 50 MB file is refused, not parsed.
      if (st.size > MAX_MANIFEST_BYTES) {
        errors.push(
          new StewardError('E_MANIFEST_PARSE', `file is larger than ${MAX_MANIFEST_BYTES} bytes (${st.size})`, {
            file: rel,
          }),
        );
        continue;
      }
      const decoded = decodeManifest(rel, await readFile(path));
      if ('error' in decoded) errors.push(decoded.error);
      else files.push({ path: rel, text: decoded.text });
    }
  }
}

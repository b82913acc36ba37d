import { compareText } from '../order.js';
import { dirname, posix } from 'node:path';
import type { AgentConfig } from '../config/load.js';
import { StewardError } from '../errors.js';
import { realPathOf } from '../host/paths.js';
import type { Bundle, Desired } from '../manifest/bundle.js';
import { KIND_RULES } from '../manifest/kinds.js';
import {
  decryptSops,
  emitDocument,
  flatEntries,
  checkSopsStructure,
  readSopsFile,
  SopsError,
  type DataKeys,
  type SopsFile,
} from '../manifest/sops.js';
import { driverOf, type Drivers } from '../resources/driver.js';
import { packageRoot } from '../paths.js';

/** Steward's own files and folders: no File resource may write to them, whatever the roots. */
export function forbiddenPaths(config: AgentConfig): string[] {
  const own = [
    config.stateDir,
    dirname(config.file),
    config.file,
    ...(config.source.tokenFile ? [config.source.tokenFile] : []),
    ...(config.source.caFile ? [config.source.caFile] : []),
    ...(config.source.ssh ? [config.source.ssh.keyFile, config.source.ssh.knownHostsFile] : []),
    ...Object.values(config.source.verify ?? {}),
    ...Object.values(config.secrets ?? {}),
    ...(config.docker.authFile ? [config.docker.authFile] : []),
    ...(process.env.CREDENTIALS_DIRECTORY ? [process.env.CREDENTIALS_DIRECTORY] : []),
    config.docker.socket,
    '/etc/systemd/system/steward.service',
    '/etc/systemd/system/steward.service.d',
    packageRoot,
  ];
  // Both spellings: the one written (what a manifest would name) and the real one (what a write
  // would reach). File paths themselves are never written through a symlink (ensureRealDir).
  const all = own
    .flatMap((p) => [posix.resolve(p), realPathOf(p)])
    .map((p) => posix.normalize(p).replace(/(.)\/$/, '$1'));
  return [...new Set(all)];
}

/** Reads a file of the commit, by its repository path. */
type ReadRepoFile = (path: string) => Promise<Buffer>;

/** No secrets.* configured: a file that needs a key says which recipients it was encrypted for. */
const NO_KEYS: DataKeys = {
  unwrap: async (meta) => {
    const recipients = [...meta.age.map((a) => `age ${a.recipient}`), ...meta.pgp.map((p) => `pgp ${p.fp}`)];
    throw new SopsError(
      `no key on this host opens it (no secrets.ageKeyFile or secrets.pgpKeyFile configured); encrypted for ${recipients.join(', ') || 'no age or pgp recipient'}`,
    );
  },
};

/**
 * The checks that need the host or the rest of the commit, run before anything is applied: each
 * driver's `admit` (File paths against the roots and Steward's own files), and the files a
 * resource takes from the same commit (relative to the manifest, never outside the repository,
 * never a symlink): a File's or Service's `source` (decrypted with the host's keys when it says
 * `decrypt: sops`) and a Container's `envFrom`. Fills each such resource's `data` or `env`.
 * Returns the errors; any error rejects the bundle, so a file that does not decrypt or verify
 * leaves the host as it is.
 */
export async function resolveBundle(
  bundle: Bundle,
  drivers: Drivers,
  readRepoFile: ReadRepoFile,
  keys: DataKeys | 'structure' = NO_KEYS,
): Promise<StewardError[]> {
  const errors: StewardError[] = [];
  for (const r of bundle.resources) {
    const refused = driverOf(drivers, r.kind)?.admit?.(r);
    if (refused) errors.push(new StewardError('E_MANIFEST_INVALID', refused.message, at(r, refused.pointer)));
    if (KIND_RULES[r.kind].carriesData) await resolveData(r, readRepoFile, keys, errors);
    const envFrom = (r.spec as { envFrom?: EnvSource[] }).envFrom;
    if (envFrom && envFrom.length > 0) await resolveEnv(r, envFrom, readRepoFile, keys, errors);
  }
  return errors.sort(
    (x, y) => compareText(x.detail.file ?? '', y.detail.file ?? '') || (x.detail.line ?? 0) - (y.detail.line ?? 0),
  );
}

const at = (r: Desired, pointer: string) => ({
  file: r.file,
  line: r.at?.(pointer) ?? r.line,
  pointer,
  resource: r.id,
});

interface EnvSource {
  source: string;
  decrypt?: 'sops';
}

/** A `source` relative to the manifest, as a repository path; undefined (and an error) when it leaves the repository. */
function repoPath(r: Desired, source: string, pointer: string, errors: StewardError[]): string | undefined {
  const joined = posix.normalize(posix.join(posix.dirname(r.file), source));
  if (!source.startsWith('/') && !joined.startsWith('../') && joined !== '..') return joined;
  errors.push(
    new StewardError(
      'E_MANIFEST_SOURCE',
      `source ${JSON.stringify(source)} must be a path inside the repository, relative to ${r.file}`,
      at(r, pointer),
    ),
  );
  return undefined;
}

/** The bytes of a file of the commit; undefined (and an error) when it cannot be read. */
async function readSource(
  r: Desired,
  src: EnvSource,
  pointer: string,
  read: ReadRepoFile,
  errors: StewardError[],
): Promise<{ path: string; bytes: Buffer } | undefined> {
  const path = repoPath(r, src.source, pointer, errors);
  if (path === undefined) return undefined;
  try {
    return { path, bytes: await read(path) };
  } catch (err) {
    errors.push(
      new StewardError(
        'E_MANIFEST_SOURCE',
        `source ${JSON.stringify(src.source)}: ${(err as Error).message}`,
        at(r, pointer),
      ),
    );
    return undefined;
  }
}

/** A file in its format, decrypted when `decrypt: sops`; a SOPS file without it (or the reverse) is refused. */
async function openSource(path: string, bytes: Buffer, decrypt: boolean, keys: Keys): Promise<SopsFile> {
  const file = readSopsFile(path, bytes.toString('utf8'));
  if (decrypt && !file.meta) throw new SopsError('has no sops metadata: it is not encrypted (remove decrypt: sops)');
  if (!decrypt && file.meta) throw new SopsError('is a SOPS file: add decrypt: sops to decrypt it on the host');
  if (decrypt && keys === 'structure') checkSopsStructure(file);
  else if (decrypt) await decryptSops(file, keys as DataKeys);
  return file;
}

/** The host's keys, or 'structure': check SOPS files without decrypting them (`steward validate` without keys). */
type Keys = DataKeys | 'structure';

const secretError = (r: Desired, path: string, pointer: string, err: unknown) =>
  err instanceof SopsError
    ? new StewardError('E_SECRET_DECRYPT', `${path}: ${err.message}`, at(r, pointer))
    : new StewardError('E_SECRET_DECRYPT', `${path}: cannot be decrypted`, at(r, pointer));

/** A File's or Service's bytes: `content`, or its `source` (decrypted with decrypt: sops). */
async function resolveData(r: Desired, read: ReadRepoFile, keys: Keys, errors: StewardError[]): Promise<void> {
  const spec = r.spec as { content?: string; source?: string; decrypt?: 'sops' };
  if (spec.content !== undefined) r.data = Buffer.from(spec.content, 'utf8');
  if (spec.source === undefined) return;
  const got = await readSource(r, { source: spec.source }, '/spec/source', read, errors);
  if (!got) return;
  if (spec.decrypt !== 'sops') {
    r.data = got.bytes;
    return;
  }
  try {
    const file = await openSource(got.path, got.bytes, true, keys);
    // Not enumerable: decrypted content never rides along when a resource is serialized.
    Object.defineProperty(r, 'data', { value: emitDocument(file), enumerable: false, writable: true });
  } catch (err) {
    errors.push(secretError(r, got.path, '/spec/source', err));
  }
}

/**
 * A Container's env with its envFrom files' values: each file a map of names to values (dotenv,
 * YAML or JSON), plain or SOPS. A name set twice (by env and a file, or by two files) is an
 * error naming both places.
 */
async function resolveEnv(
  r: Desired,
  sources: EnvSource[],
  read: ReadRepoFile,
  keys: Keys,
  errors: StewardError[],
): Promise<void> {
  const env: Record<string, string> = { ...((r.spec as { env?: Record<string, string> }).env ?? {}) };
  const setBy = new Map(Object.keys(env).map((k) => [k, 'env']));
  const before = errors.length;
  for (const [i, src] of sources.entries()) {
    const pointer = `/spec/envFrom/${i}/source`;
    const got = await readSource(r, src, pointer, read, errors);
    if (!got) continue;
    let entries: Array<[string, string]>;
    try {
      entries = flatEntries((await openSource(got.path, got.bytes, src.decrypt === 'sops', keys)).doc);
    } catch (err) {
      errors.push(secretError(r, got.path, pointer, err));
      continue;
    }
    for (const [name, value] of entries) {
      const problem = !/^[^=\s\x00]+$/.test(name)
        ? `${JSON.stringify(name)} is not an environment variable name`
        : value.includes('\0')
          ? `the value of ${name} holds a NUL byte`
          : setBy.has(name)
            ? `${name} is set by both ${setBy.get(name)} and envFrom[${i}] (${got.path}); set it in one place`
            : undefined;
      if (problem) errors.push(new StewardError('E_MANIFEST_INVALID', `${got.path}: ${problem}`, at(r, pointer)));
      else {
        env[name] = value;
        setBy.set(name, `envFrom[${i}] (${got.path})`);
      }
    }
  }
  if (errors.length === before) Object.defineProperty(r, 'env', { value: env, enumerable: false, writable: true });
}

import { dirname, posix } from 'node:path';
import type { AgentConfig } from '../config/load.js';
import { StewardError } from '../errors.js';
import { realPathOf } from '../host/paths.js';
import type { Bundle, Desired } from '../manifest/bundle.js';
import { KIND_RULES } from '../manifest/kinds.js';
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

/**
 * The checks that need the host or the rest of the commit, run before anything is applied: each
 * driver's `admit` (File paths against the roots and Steward's own files), and the `source`
 * files of the kinds that carry data, read from the same commit (relative to the manifest, never
 * outside the repository, never a symlink). Fills each such resource's `data`. Returns the
 * errors; any error rejects the bundle.
 */
export async function resolveBundle(
  bundle: Bundle,
  drivers: Drivers,
  readRepoFile: (path: string) => Promise<Buffer>,
): Promise<StewardError[]> {
  const errors: StewardError[] = [];
  const at = (r: Desired, pointer: string) => ({
    file: r.file,
    line: r.at?.(pointer) ?? r.line,
    pointer,
    resource: r.id,
  });
  for (const r of bundle.resources) {
    const refused = driverOf(drivers, r.kind)?.admit?.(r);
    if (refused) errors.push(new StewardError('E_MANIFEST_INVALID', refused.message, at(r, refused.pointer)));
    if (!KIND_RULES[r.kind].carriesData) continue;
    const spec = r.spec as { content?: string; source?: string };
    if (spec.content !== undefined) r.data = Buffer.from(spec.content, 'utf8');
    else if (spec.source !== undefined) {
      const joined = posix.normalize(posix.join(posix.dirname(r.file), spec.source));
      if (spec.source.startsWith('/') || joined.startsWith('../') || joined === '..') {
        errors.push(
          new StewardError(
            'E_MANIFEST_SOURCE',
            `source ${JSON.stringify(spec.source)} must be a path inside the repository, relative to ${r.file}`,
            at(r, '/spec/source'),
          ),
        );
        continue;
      }
      try {
        r.data = await readRepoFile(joined);
      } catch (err) {
        errors.push(
          new StewardError(
            'E_MANIFEST_SOURCE',
            `source ${JSON.stringify(spec.source)}: ${(err as Error).message}`,
            at(r, '/spec/source'),
          ),
        );
      }
    }
  }
  return errors.sort(
    (x, y) => (x.detail.file ?? '').localeCompare(y.detail.file ?? '') || (x.detail.line ?? 0) - (y.detail.line ?? 0),
  );
}

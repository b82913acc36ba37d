import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, readCredentials, DEFAULT_CONFIG_PATH } from '../config/load.js';
import { StewardError } from '../errors.js';
import { Secret } from '../config/secret.js';
import { openRemote } from '../source/remote.js';
import { GitRepo } from '../source/repo.js';
import { formatAge, readFleet, type FleetRow } from '../status/fleet.js';
import { readFile } from 'node:fs/promises';
import { args, type ExitCode, type Io } from './common.js';

export const help =
  'steward status [--config FILE | --url URL [--token-file F]] [--branch B] [--selector k=v] [--host NAME] [--json]';

/** Prints the fleet from the status branch. Exit 1 when a selected host is not converged or is stale. */
export async function status(argv: string[], io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, {
    config: { type: 'string', short: 'c' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
    username: { type: 'string' },
    branch: { type: 'string' },
    selector: { type: 'string', multiple: true },
    host: { type: 'string' },
    json: { type: 'boolean' },
  });
  const { url, branch, username, timeoutMs, token } = await statusSource(values);
  const selectors = (values.selector ?? []).map((s) => {
    const m = /^([^=]+)=(.*)$/.exec(s);
    if (!m) throw new StewardError('E_ARGS', `--selector ${s}: expected key=value`);
    return [m[1]!, m[2]!] as const;
  });
  const gitdir = await mkdtemp(join(tmpdir(), 'steward-status-'));
  try {
    const repo = new GitRepo({
      gitdir,
      url,
      ...openRemote({ username, ...(token ? { token } : {}), timeoutMs, signal }),
    });
    await repo.init();
    const { rows, unreadable } = await readFleet(repo, branch ?? 'steward-status', new Date());
    // A document that cannot be read is said, never skipped silently: that host counts as failing.
    const bad = unreadable.filter((u) => !values.host || u.host === values.host);
    for (const u of bad) io.err(`hosts/${u.host}/status.json cannot be read: ${u.reason}`);
    const selected = rows.filter(
      (r) => (!values.host || r.host === values.host) && selectors.every(([k, v]) => r.doc.labels?.[k] === v),
    );
    if (values.host && selected.length === 0 && bad.length > 0) return 1;
    if (values.host && selected.length === 0)
      throw new StewardError('E_ARGS', `no status for host "${values.host}" on the status branch`);
    if (values.json)
      io.out(JSON.stringify(values.host ? selected[0]!.doc : selected.map(({ doc: _d, ...r }) => r), null, 2));
    else io.out(values.host ? detail(selected[0]!) : table(selected));
    return bad.length > 0 || selected.some((r) => r.phase !== 'Converged' || r.stale) ? 1 : 0;
  } finally {
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** Where the status branch is: the flags, else the agent config (and its credentials). */
async function statusSource(values: {
  url?: string;
  branch?: string;
  username?: string;
  config?: string;
  'token-file'?: string;
}): Promise<{ url: string; branch?: string; username: string; timeoutMs: number; token?: Secret }> {
  if (!values.url) {
    const config = await loadConfig(values.config ?? process.env.STEWARD_CONFIG ?? DEFAULT_CONFIG_PATH);
    const { token } = await readCredentials(config);
    return {
      url: config.source.url,
      branch: values.branch ?? config.status.branch,
      username: config.source.username,
      timeoutMs: config.source.timeoutMs,
      ...(token ? { token } : {}),
    };
  }
  const file = values['token-file'];
  const token = file
    ? new Secret(
        (
          await readFile(file, 'utf8').catch(() => {
            throw new StewardError('E_CONFIG_TOKEN', `cannot read the token file ${file}`);
          })
        ).trim(),
      )
    : undefined;
  return {
    url: values.url,
    ...(values.branch ? { branch: values.branch } : {}),
    username: values.username ?? 'steward',
    timeoutMs: 30_000,
    ...(token ? { token } : {}),
  };
}

function table(rows: FleetRow[]): string {
  const head = ['HOST', 'PHASE', 'APPLIED', 'AGE', 'STALE', 'FAILING'];
  const body = rows.map((r) => [
    r.host,
    r.phase,
    r.appliedRevision?.slice(0, 7) ?? '-',
    formatAge(r.ageSeconds),
    r.stale ? 'stale' : '-',
    r.failing.join(',') || '-',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n');
}

function detail(r: FleetRow): string {
  const d = r.doc;
  const lines = [
    `host:      ${d.host}${
      Object.keys(d.labels).length
        ? ` (${Object.entries(d.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')})`
        : ''
    }`,
    `phase:     ${d.phase}${r.stale ? ' (stale: no report for 3 heartbeats)' : ''}`,
    `revisions: desired ${d.desiredRevision?.slice(0, 7) ?? '-'}, applied ${d.appliedRevision?.slice(0, 7) ?? '-'}, last good ${d.lastGoodRevision?.slice(0, 7) ?? '-'}`,
    ...(d.signer
      ? [
          `signed by: ${d.signer.principal || '(no user ID)'} (${d.signer.format === 'ssh' ? 'SSH' : 'OpenPGP'} key ${d.signer.fingerprint}) at ${d.signer.revision.slice(0, 7)}`,
        ]
      : []),
    `updated:   ${d.updatedAt} (${formatAge(r.ageSeconds)} ago), agent ${d.agentVersion}`,
    'resources:',
    ...Object.entries(d.resources).flatMap(([id, x]) =>
      !x
        ? []
        : [
            `  ${id.padEnd(28)} ${x.status.padEnd(8)} ${x.action.padEnd(8)} ${x.message}${x.driftCorrected ? ' (drift corrected)' : ''}`,
          ],
    ),
    ...(d.errors.length
      ? [
          'errors:',
          ...d.errors.map(
            (e) => `  ${e.code} ${[e.file, e.line].filter(Boolean).join(':')} ${e.pointer ?? ''} ${e.message}`,
          ),
        ]
      : []),
    'recent runs:',
    ...(d.recentRuns ?? []).map(
      (x) =>
        `  ${x.startedAt}  ${x.result.padEnd(10)} ${x.revision?.slice(0, 7) ?? '-'}  ${x.counts.changed} changed, ${x.counts.failed} failed, ${x.durationMs}ms`,
    ),
  ];
  return lines.join('\n');
}

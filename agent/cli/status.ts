import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp, rm } from '../files.js';
import { isSshUrl, loadConfig, DEFAULT_CONFIG_PATH } from '../config/load.js';
import { StewardError } from '../errors.js';
import { Secret } from '../config/secret.js';
import { configRemote, openRemote, readGitCredentials, type GitRemote } from '../source/remote.js';
import { SshTransport } from '../source/ssh.js';
import { readSshAuth } from '../source/sshauth.js';
import { GitRepo } from '../source/repo.js';
import { formatAge, readFleet, type FleetRow } from '../status/fleet.js';
import { readRollout, ROLLOUT_FILE } from '../manifest/rollout.js';
import { formatSoak, waveProgress } from '../reconcile/rollout.js';
import { readRepoFile } from '../source/tree.js';
import { readFile } from '../files.js';
import { args, type ExitCode, type Io } from './common.js';

export const help =
  'steward status [--config FILE | --url URL [--token-file F | --ssh-key-file F --known-hosts-file F]] [--branch B] [--selector k=v] [--host NAME] [--waves [--source-branch B]] [--json]';

/** Prints the fleet from the status branch. Exit 1 when a selected host is not converged or is stale. */
export async function status(argv: string[], io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, {
    config: { type: 'string', short: 'c' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
    'ssh-key-file': { type: 'string' },
    'known-hosts-file': { type: 'string' },
    username: { type: 'string' },
    branch: { type: 'string' },
    selector: { type: 'string', multiple: true },
    host: { type: 'string' },
    waves: { type: 'boolean' },
    'source-branch': { type: 'string' },
    json: { type: 'boolean' },
  });
  const { url, branch, sourceBranch, remote } = await statusSource(values, signal);
  const selectors = (values.selector ?? []).map((s) => {
    const m = /^([^=]+)=(.*)$/.exec(s);
    if (!m) throw new StewardError('E_ARGS', `--selector ${s}: expected key=value`);
    return [m[1]!, m[2]!] as const;
  });
  const gitdir = await mkdtemp(join(tmpdir(), 'steward-status-'));
  try {
    const repo = new GitRepo({ gitdir, url, ...remote });
    await repo.init();
    const { rows, unreadable } = await readFleet(repo, branch ?? 'steward-status', new Date(), {
      ...(values.host ? { host: values.host } : {}),
    });
    // A document that cannot be read is said, never skipped silently: that host counts as failing.
    const bad = unreadable.filter((u) => !values.host || u.host === values.host);
    for (const u of bad) io.err(`hosts/${u.host}/status.json cannot be read: ${u.reason}`);
    const selected = rows.filter(
      (r) => (!values.host || r.host === values.host) && selectors.every(([k, v]) => r.doc.labels?.[k] === v),
    );
    if (values.waves) return await waves(repo, sourceBranch, rows, io, values.json === true);
    if (values.host && selected.length === 0 && bad.length > 0) return 1;
    if (values.host && selected.length === 0)
      throw new StewardError('E_ARGS', `no status for host "${values.host}" on the status branch`);
    if (values.json)
      io.out(JSON.stringify(values.host ? selected[0]!.doc : selected.map(({ doc: _d, ...r }) => r), null, 2));
    else io.out(values.host ? detail(selected[0]!) : table(selected));
    return bad.length > 0 || selected.some((r) => r.phase !== 'Converged' || r.stale) ? 1 : 0;
  } finally {
    if (remote.transport instanceof SshTransport) remote.transport.close();
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** Where the status branch is: the flags, else the agent config (and its credentials). */
async function statusSource(
  values: {
    url?: string;
    branch?: string;
    username?: string;
    config?: string;
    'token-file'?: string;
    'ssh-key-file'?: string;
    'known-hosts-file'?: string;
    'source-branch'?: string;
  },
  signal: AbortSignal,
): Promise<{ url: string; branch?: string; sourceBranch: string; remote: GitRemote }> {
  if (!values.url) {
    const config = await loadConfig(values.config ?? process.env.STEWARD_CONFIG ?? DEFAULT_CONFIG_PATH);
    return {
      url: config.source.url,
      branch: values.branch ?? config.status.branch,
      sourceBranch: values['source-branch'] ?? config.source.branch,
      remote: configRemote(config, await readGitCredentials(config), { signal }),
    };
  }
  const username = values.username ?? 'steward';
  const branch = {
    ...(values.branch ? { branch: values.branch } : {}),
    sourceBranch: values['source-branch'] ?? 'main',
  };
  const timeoutMs = 30_000;
  if (isSshUrl(values.url)) {
    const keyFile = values['ssh-key-file'];
    const knownHostsFile = values['known-hosts-file'];
    if (!keyFile || !knownHostsFile)
      throw new StewardError('E_ARGS', `--url ${values.url} is SSH: give --ssh-key-file and --known-hosts-file`);
    const auth = await readSshAuth({ file: '--ssh-key-file/--known-hosts-file' }, keyFile, knownHostsFile);
    const transport = new SshTransport({ url: values.url, username, auth, timeoutMs, signal });
    return { url: values.url, ...branch, remote: { ...openRemote({ username, timeoutMs, signal }), transport } };
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
    ...branch,
    remote: openRemote({ username, ...(token ? { token } : {}), timeoutMs, signal }),
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

/**
 * `--waves`: each wave of the head's rollout.yaml, as a host of the next wave judges it: its
 * hosts, how many hold the head (Converged, healthy, for the soak), how many must, which failed
 * it. Exit 0 once every host holds the head, 1 while the rollout is under way or halted.
 */
async function waves(repo: GitRepo, branch: string, rows: FleetRow[], io: Io, json: boolean): Promise<ExitCode> {
  const head = await repo.fetch(branch);
  let text: string;
  try {
    text = (await readRepoFile(repo.objects, head, ROLLOUT_FILE)).toString('utf8');
  } catch {
    throw new StewardError('E_ARGS', `there is no ${ROLLOUT_FILE} on branch "${branch}" at ${head.slice(0, 7)}`);
  }
  const rollout = readRollout(text);
  if (rollout.problems.length > 0)
    throw new StewardError('E_MANIFEST_INVALID', rollout.problems.join('; '), { file: ROLLOUT_FILE });
  const progress = await waveProgress(rollout.waves, rows, head, new Date(), async () => false);
  if (json) io.out(JSON.stringify({ revision: head, branch, waves: progress }, null, 2));
  else {
    io.out(`rollout of ${head.slice(0, 7)} (branch ${branch}):`);
    const w = Math.max(...progress.map((p) => p.name.length));
    for (const p of progress) {
      const soak = p.soakMs > 0 ? ` for ${formatSoak(p.soakMs)}` : '';
      const state =
        p.failed.length > 0
          ? `halted: failed on ${p.failed.slice(0, 5).join(', ')}`
          : p.held >= p.needed
            ? 'done'
            : 'under way';
      io.out(
        `  ${p.name.padEnd(w)}  ${p.held} of ${p.hosts.length} host(s) at it${soak}, ${p.needed} needed: ${state}`,
      );
    }
  }
  return progress.every((p) => p.failed.length === 0 && p.held === p.hosts.length) ? 0 : 1;
}

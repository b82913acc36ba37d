// Status branch growth (issue 5): the branch after 10,000 reports from 200 hosts, written with
// git fast-import in the exact shape agents write (hosts/<host>/status.json, one commit per
// report, Steward-Seq trailers). Prints its size on the server and what an agent and
// `steward status` pay to read it (depth 1), then the same after the squash at the history limit.
//   node --import ./test/loader/register.mjs bench/status-growth.ts [reports] [hosts]
import { execFile, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { readFleet } from '../agent/status/fleet.js';
import { publishStatus } from '../agent/status/publish.js';
import { buildStatus } from '../agent/reconcile/report.js';
import { emptyState } from '../agent/reconcile/state.js';
import { StewardError } from '../agent/errors.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const exec = promisify(execFile);
const reports = Number(process.argv[2] ?? 10_000);
const hostCount = Number(process.argv[3] ?? 200);
const log = memoryLogger([]);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}; ${reports} reports from ${hostCount} hosts`);

/** A realistic document: 5 resources, one failing now and then. */
function report(host: string, n: number): string {
  const now = new Date(Date.UTC(2026, 0, 1) + n * 60_000);
  const rev = (n * 7919).toString(16).padStart(40, '0');
  const results = new Map(
    ['Container/web', 'Container/agent', 'File/config', 'File/page', 'Service/kiosk'].map((id, i) => [
      id,
      {
        id,
        action: 'none' as const,
        status: n % 97 === i ? ('Failed' as const) : ('Ready' as const),
        message: n % 97 === i ? 'cannot pull image' : 'up to date',
        drift: false,
        ...(n % 97 === i ? { error: new StewardError('E_IMAGE_PULL', 'cannot pull image') } : {}),
      },
    ]),
  );
  const doc = buildStatus(
    {
      host,
      labels: { site: `site-${n % 7}`, role: 'kiosk' },
      agentVersion: '0.1.0',
      heartbeatSeconds: 900,
      facts: {
        os: 'Debian GNU/Linux 12',
        kernel: '6.1.0',
        arch: 'x64',
        cpu: 'ARM Cortex-A72',
        cpus: 4,
        memoryBytes: 4 << 30,
        dockerVersion: '20.10.24',
        nodeVersion: '26.10.0',
      },
    },
    {
      startedAt: now,
      durationMs: 40 + (n % 50),
      desiredRevision: rev,
      appliedRevision: rev,
      lastGoodRevision: rev,
      phase: n % 97 < 5 ? 'Failed' : 'Converged',
      bundleErrors: [],
      results,
      notes: [],
    },
    emptyState(),
    now,
  );
  return JSON.stringify(doc, null, 2) + '\n';
}

async function fastImport(bare: string, count: number, start = 0): Promise<void> {
  const child = spawn('git', ['--git-dir', bare, 'fast-import', '--quiet'], { stdio: ['pipe', 'inherit', 'inherit'] });
  const w = (s: string | Buffer) => child.stdin.write(s);
  for (let n = start + 1; n <= start + count; n++) {
    const host = `host-${String(n % hostCount).padStart(4, '0')}`;
    const body = Buffer.from(report(host, n));
    const msg = Buffer.from(
      `steward(${host}): Converged at ${(n * 7919).toString(16).padStart(40, '0').slice(0, 7)} — 0 changed, 0 failed\n\nSteward-Seq: ${n}\n`,
    );
    const when = 1767225600 + n * 60;
    w(
      `commit refs/heads/steward-status\ncommitter ${host} <${host}@steward.invalid> ${when} +0000\ndata ${msg.length}\n`,
    );
    w(msg);
    w('\n');
    // Continuing an existing branch: fast-import starts from its tip only when told.
    if (n === start + 1 && start > 0) w('from refs/heads/steward-status^0\n');
    w(`M 100644 inline hosts/${host}/status.json\ndata ${body.length}\n`);
    w(body);
    w('\n');
  }
  child.stdin.end();
  await new Promise((r) => child.on('exit', r));
}

const size = async (bare: string) => {
  const out = (await exec('git', ['--git-dir', bare, 'count-objects', '-v'])).stdout;
  const kib = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(out)?.[1] ?? 0);
  return ((kib('size') + kib('size-pack')) / 1024).toFixed(1);
};

/**
 * The steady state: an agent that last published a heartbeat period ago, while every other host
 * reported once. Its next report fetches what changed since: every other host's document.
 */
async function afterEveryHostReported(url: string, bare: string): Promise<string> {
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-growth-')), 'status.git'),
    url,
    headers: {},
    http: createHttpClient({ timeoutMs: 120_000, stats }),
  });
  await publishStatus(repo, 'steward-status', JSON.parse(report('host-0001', reports + 2)), log);
  await fastImport(bare, hostCount, reports + 2);
  const before = { ...stats };
  const t0 = performance.now();
  await publishStatus(repo, 'steward-status', JSON.parse(report('host-0001', reports + hostCount + 3)), log);
  const ms = performance.now() - t0;
  const kib = (stats.bytesReceived - before.bytesReceived + stats.bytesSent - before.bytesSent) / 1024;
  return `one report after each of the ${hostCount} hosts reported once since this one's last: ${ms.toFixed(0)} ms, ${kib.toFixed(1)} KiB moved (${((kib * 1024) / hostCount).toFixed(0)} bytes per other host's report)`;
}

async function readAsAgent(url: string): Promise<string> {
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-growth-')), 'status.git'),
    url,
    headers: {},
    http: createHttpClient({ timeoutMs: 120_000, stats }),
  });
  await repo.init();
  const t0 = performance.now();
  const { rows } = await readFleet(repo, 'steward-status', new Date());
  const fresh = performance.now() - t0;
  const s1 = { ...stats };
  const t1 = performance.now();
  await publishStatus(repo, 'steward-status', JSON.parse(report('host-0001', reports + 1)), log);
  const push = performance.now() - t1;
  return `steward status / first fetch (depth 1): ${fresh.toFixed(0)} ms, ${(s1.bytesReceived / 1024).toFixed(0)} KiB, ${s1.requests} requests, ${rows.length} hosts read; one more report pushed: ${push.toFixed(0)} ms, ${((stats.bytesReceived - s1.bytesReceived + stats.bytesSent - s1.bytesSent) / 1024).toFixed(1)} KiB moved`;
}

const server = await startGitServer();
try {
  const fleet = await createFleetRepo(server, 'growth');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const t0 = performance.now();
  await fastImport(fleet.bare, reports);
  console.log(`wrote ${reports} commits in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await exec('git', ['--git-dir', fleet.bare, 'gc', '--quiet']);
  console.log(`server repository after ${reports} reports (git gc): ${await size(fleet.bare)} MiB`);
  console.log(await readAsAgent(server.url('growth')));
  console.log(await afterEveryHostReported(server.url('growth'), fleet.bare));
  // What the history limit does: the host past it writes a root commit with the tip's tree.
  const tip = (await exec('git', ['--git-dir', fleet.bare, 'rev-parse', 'steward-status'])).stdout.trim();
  const tree = (await exec('git', ['--git-dir', fleet.bare, 'rev-parse', `${tip}^{tree}`])).stdout.trim();
  const root = (
    await exec('git', ['--git-dir', fleet.bare, 'commit-tree', tree, '-m', 'squash\n\nSteward-Seq: 1'], {
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'h',
        GIT_AUTHOR_EMAIL: 'h@x',
        GIT_COMMITTER_NAME: 'h',
        GIT_COMMITTER_EMAIL: 'h@x',
      },
    })
  ).stdout.trim();
  await exec('git', ['--git-dir', fleet.bare, 'update-ref', 'refs/heads/steward-status', root]);
  await exec('git', ['--git-dir', fleet.bare, 'reflog', 'expire', '--expire=now', '--all']);
  await exec('git', ['--git-dir', fleet.bare, 'gc', '--quiet', '--prune=now']);
  console.log(`after the squash at the history limit and the server's gc: ${await size(fleet.bare)} MiB`);
  console.log(await readAsAgent(server.url('growth')));
} finally {
  await server.stop();
}

// The status plane at fleet size (issue 14): N hosts, each with its own status store, publishing
// with the real publish code to the real git http-backend on loopback (test/helpers/git-server.mjs,
// which counts requests and its own CPU, git included). Prints figures; asserts nothing.
//   node --import ./test/loader/register.mjs bench/status-fleet.ts [hosts=1000] [heartbeatRounds=3] [burstSeconds=60] [prefill=0] [seed=0]
// prefill: earlier reports per host written into the server by git fast-import first (test/helpers/prefill.ts);
// the hosts' first real reports then find their branch there, as a reinstalled host does (3 requests).
// seed=1: each host's store is also given its branch's tip as its last push (seedHostStores), as a
// host that has been running holds it, and the first-report phase is skipped: `10000 1 60 8 1`
// is a fleet of 10,000 in steady state that ends with 100,000 reports on the server.
// Phases: first reports (every host once), steady heartbeats (rounds, every host once per round
// at a random moment of a 60 s window), a burst after a fleet-wide change spread over
// burstSeconds, then `steward status` (readFleet) from a fresh store, whole fleet and one host.
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { hostBranch, readFleet } from '../agent/status/fleet.js';
import { publishStatus, type PublishResult } from '../agent/status/publish.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, gitOut, startGitServer } from '../test/helpers/git.js';
import { convergedDoc } from '../test/helpers/status.js';
import { prefillHostBranches, seedHostStores } from '../test/helpers/prefill.js';

const exec = promisify(execFile);
const n = Number(process.argv[2] ?? 1000);
const heartbeatRounds = Number(process.argv[3] ?? 3);
const burstSeconds = Number(process.argv[4] ?? 60);
const prefill = Number(process.argv[5] ?? 0);
const seed = prefill > 0 && process.argv[6] === '1';
const REV = 'e'.repeat(40);
const NEXT = 'f'.repeat(40);
const log = memoryLogger([]);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await exec('git', ['--version'])).stdout.trim()}; ${n} hosts`,
);

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
await fleet.commit({ 'README.md': 'fleet\n' });
const base = await mkdtemp(join(tmpdir(), 'steward-fleet-bench-'));
const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
const http = createHttpClient({ timeoutMs: 120_000, stats });
const hosts = Array.from({ length: n }, (_, i) => ({
  name: `edge-${String(i).padStart(5, '0')}`,
  repo: new GitRepo({ gitdir: join(base, `h${i}`, 'status.git'), url: server.url('fleet'), headers: {}, http }),
}));

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

/** Publishes one report per host; `delayOf` spreads them; at most `parallel` in flight. */
async function phase(name: string, rev: string, delayOf: () => number, parallel = 64) {
  const s0 = await server.stats();
  const c0 = { ...stats };
  const latencies: number[] = [];
  let failed = 0;
  let refusals = 0;
  const t0 = performance.now();
  const now = new Date();
  let inFlight = 0;
  const waiters: Array<() => void> = [];
  const slot = async () => {
    while (inFlight >= parallel) await new Promise<void>((r) => waiters.push(r));
    inFlight++;
  };
  await Promise.all(
    hosts.map(async (h) => {
      await new Promise((r) => setTimeout(r, delayOf()));
      await slot();
      const start = performance.now();
      try {
        const r: PublishResult = await publishStatus(
          h.repo,
          hostBranch('steward-status', h.name),
          convergedDoc(h.name, rev, now),
          log,
          {
            own: true,
            deadlineMs: 600_000,
          },
        );
        refusals += r.attempts - 1;
        latencies.push(performance.now() - start);
      } catch {
        failed++;
      } finally {
        inFlight--;
        waiters.shift()?.();
      }
    }),
  );
  const s1 = await server.stats();
  const reports = n - failed;
  console.log(
    `${name}: ${reports} landed, ${failed} lost, ${refusals} refusals in ${((performance.now() - t0) / 1000).toFixed(1)} s; per report ${((s1.requests - s0.requests) / n).toFixed(2)} requests, ${Math.round((stats.bytesSent - c0.bytesSent) / n)} bytes sent + ${Math.round((stats.bytesReceived - c0.bytesReceived) / n)} received, latency p50 ${pct(latencies, 0.5).toFixed(0)} ms p95 ${pct(latencies, 0.95).toFixed(0)} ms max ${Math.max(...latencies).toFixed(0)} ms, server CPU ${(((s1.cpuSeconds - s0.cpuSeconds) * 1000) / n).toFixed(1)} ms`,
  );
}

try {
  await Promise.all(hosts.map((h) => h.repo.init()));
  if (prefill > 0) {
    const t0 = performance.now();
    await prefillHostBranches(
      fleet.bare,
      hosts.map((h) => h.name),
      REV,
      prefill,
    );
    console.log(
      `prefill: ${n * prefill} earlier reports (${prefill} per host) written by git fast-import in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  if (seed) {
    const t0 = performance.now();
    await seedHostStores(fleet.bare, hosts);
    await exec('git', ['--git-dir', fleet.bare, 'pack-refs', '--all']);
    console.log(
      `seed: every host's store holds its branch's tip as its last push (${((performance.now() - t0) / 1000).toFixed(1)} s); server refs packed`,
    );
  } else
    await phase(prefill > 0 ? 'first reports (branch on the server, store new)' : 'first reports', REV, () => 0, 32);
  for (let i = 1; i <= heartbeatRounds; i++)
    await phase(`heartbeat round ${i} (over 60 s)`, REV, () => Math.random() * 60_000);
  await phase(
    `burst after a fleet-wide change (jitter ${burstSeconds} s)`,
    NEXT,
    () => Math.random() * burstSeconds * 1000,
  );

  const refs = (
    await gitOut(fleet.bare, 'for-each-ref', '--format=%(refname)', 'refs/heads/steward-status-by-host/')
  ).split('\n');
  const du = async () => (await exec('du', ['-sk', fleet.bare])).stdout.split('\t')[0];
  console.log(`server: ${refs.length} host branches, repository ${await du()} KiB (loose objects, before gc)`);
  await exec('git', ['--git-dir', fleet.bare, 'gc', '-q']);
  console.log(`server: repository ${await du()} KiB after git gc`);

  for (const what of ['whole fleet', 'one host'] as const) {
    const readerStats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
    const reader = new GitRepo({
      gitdir: join(await mkdtemp(join(tmpdir(), 'steward-fleet-reader-')), 'status.git'),
      url: server.url('fleet'),
      headers: {},
      http: createHttpClient({ timeoutMs: 120_000, stats: readerStats }),
    });
    const s0 = await server.stats();
    const t0 = performance.now();
    const { rows } = await readFleet(
      reader,
      'steward-status',
      new Date(),
      what === 'one host' ? { host: hosts[n >> 1]!.name } : {},
    );
    const s1 = await server.stats();
    console.log(
      `steward status, ${what}: ${rows.length} rows in ${(performance.now() - t0).toFixed(0)} ms, ${s1.requests - s0.requests} requests, ${((readerStats.bytesSent + readerStats.bytesReceived) / 1024).toFixed(0)} KiB on the wire, server CPU ${((s1.cpuSeconds - s0.cpuSeconds) * 1000).toFixed(0)} ms`,
    );
  }
} finally {
  await server.stop();
}

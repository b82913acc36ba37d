// The status plane at 10,000 hosts (issue 14), where publishing every report for real would take
// this 2-core machine most of an hour: the hosts' branches are written straight into the server's
// repository with `git fast-import` (one real status document per host, as the agent writes it),
// then R reporters publish through the real code and the real git http-backend, and `steward
// status` reads the fleet from a fresh store. Prints figures; asserts nothing.
//   node --import ./test/loader/register.mjs bench/status-10k.ts [hosts=10000] [reporters=50] [rounds=3] [reportsPerHost=1]
// reportsPerHost 10 leaves the server with 100,000 reports (fast-import) before the real ones.
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { publishStatus } from '../agent/status/publish.js';
import { hostBranch, readFleet } from '../agent/status/fleet.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';
import { convergedDoc } from '../test/helpers/status.js';
import { prefillHostBranches } from '../test/helpers/prefill.js';

const exec = promisify(execFile);
const n = Number(process.argv[2] ?? 10_000);
const reporters = Number(process.argv[3] ?? 50);
const rounds = Number(process.argv[4] ?? 3);
const perHost = Number(process.argv[5] ?? 1);
const REV = 'a'.repeat(40);
const log = memoryLogger([]);
const name = (i: number) => `edge-${String(i).padStart(5, '0')}`;
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await exec('git', ['--version'])).stdout.trim()}; ${n} hosts`,
);

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
await fleet.commit({ 'README.md': 'fleet\n' });

// Every host's branch with its first report, as publishStatus would have written it.
const t0 = performance.now();
await prefillHostBranches(
  fleet.bare,
  Array.from({ length: n }, (_, i) => name(i)),
  REV,
  perHost,
);
console.log(
  `${n} host branches, ${n * perHost} reports, written by git fast-import in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
const http = createHttpClient({ timeoutMs: 120_000, stats });
const base = await mkdtemp(join(tmpdir(), 'steward-10k-'));
const hosts = Array.from({ length: reporters }, (_, i) => ({
  name: name(i * Math.floor(n / reporters)),
  repo: new GitRepo({ gitdir: join(base, `r${i}`, 'status.git'), url: server.url('fleet'), headers: {}, http }),
}));
await Promise.all(hosts.map((h) => h.repo.init()));

async function round(label: string, durationMs: number) {
  const s0 = await server.stats();
  const c0 = { ...stats };
  const lat: number[] = [];
  let refusals = 0;
  let lost = 0;
  const now = new Date();
  // One at a time: the cost of one report against a server holding n branches, not a crowd.
  for (const h of hosts) {
    const start = performance.now();
    try {
      const r = await publishStatus(
        h.repo,
        hostBranch('steward-status', h.name),
        convergedDoc(h.name, REV, now, { durationMs }),
        log,
        {
          own: true,
        },
      );
      refusals += r.attempts - 1;
    } catch {
      lost++;
    }
    lat.push(performance.now() - start);
  }
  const s1 = await server.stats();
  lat.sort((a, b) => a - b);
  console.log(
    `${label}: ${reporters - lost} landed, ${lost} lost, ${refusals} refusals; per report ${((s1.requests - s0.requests) / reporters).toFixed(2)} requests, ${Math.round((stats.bytesSent - c0.bytesSent) / reporters)} bytes sent + ${Math.round((stats.bytesReceived - c0.bytesReceived) / reporters)} received, p50 ${lat[lat.length >> 1]!.toFixed(0)} ms, max ${lat.at(-1)!.toFixed(0)} ms, server CPU ${(((s1.cpuSeconds - s0.cpuSeconds) * 1000) / reporters).toFixed(1)} ms`,
  );
}

async function status(label: string, opts: { host?: string } = {}) {
  const readerStats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const reader = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-10k-reader-')), 'status.git'),
    url: server.url('fleet'),
    headers: {},
    http: createHttpClient({ timeoutMs: 120_000, stats: readerStats }),
  });
  const s0 = await server.stats();
  const t1 = performance.now();
  const { rows } = await readFleet(reader, 'steward-status', new Date(), opts);
  const s1 = await server.stats();
  console.log(
    `steward status, ${label}: ${rows.length} rows in ${(performance.now() - t1).toFixed(0)} ms, ${s1.requests - s0.requests} requests, ${((readerStats.bytesSent + readerStats.bytesReceived) / 1024).toFixed(0)} KiB on the wire, server CPU ${((s1.cpuSeconds - s0.cpuSeconds) * 1000).toFixed(0)} ms`,
  );
}

/** Where the time of a whole-fleet read goes: ls-refs, then the fetch with indexing (the rest of `steward status` is parsing the documents). */
async function breakdown() {
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-10k-parts-')), 'status.git'),
    url: server.url('fleet'),
    headers: {},
    http: createHttpClient({ timeoutMs: 120_000 }),
  });
  const t1 = performance.now();
  const refs = await repo.remoteRefs('refs/heads/steward-status');
  const t2 = performance.now();
  let kept = 0;
  await repo.fetchCommits(new Map([...refs].map(([r, o]) => [r.slice('refs/heads/'.length), o])), () => kept++);
  const t3 = performance.now();
  console.log(
    `whole-fleet read, by part: ls-refs of ${refs.size} branches ${(t2 - t1).toFixed(0)} ms, fetch and index of ${kept} objects ${(t3 - t2).toFixed(0)} ms`,
  );
}

try {
  await breakdown();
  await round('first report of each reporter (its branch exists: ls-refs, fetch, push)', 1);
  for (let r = 2; r <= rounds + 1; r++) await round(`report ${r}, loose refs on the server`, r);
  await exec('git', ['--git-dir', fleet.bare, 'pack-refs', '--all']);
  await round('one more report after git pack-refs --all', rounds + 2);
  await status('whole fleet');
  await status('one host', { host: hosts.at(-1)!.name });
  const du = (await exec('du', ['-sk', fleet.bare])).stdout.split('\t')[0];
  console.log(`server repository: ${du} KiB`);
} finally {
  await server.stop();
}

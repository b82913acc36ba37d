// Status branch figures (issue 5): push latency (p50, p95) and attempts with N hosts pushing at
// once through the real Git server (git http-backend behind Node's HTTP server, on this machine).
//   node --import ./test/loader/register.mjs bench/status-push.ts [N ...]
// ROUNDS=k (default 2) rounds per size; WORKERS=w (default 1) processes share the hosts. In
// the field every host is its own process; one Node process running 200 publishers at once
// queues their file and hash work on one event loop and one libuv pool, which stretches each
// attempt. Measured here: 8 processes gave the same figures as 1 on 2 cores (the CPU is shared).
// SPREAD_MS=s: each host starts at a random moment within s ms (as `source.jitter` spreads polls);
// latency is then counted from the host's own start.
// CAP_S=c: each host gives up after c s (its report stays pending, as in an outbox); the round
// prints how many landed, and latencies are over the landed ones. Without it a host never gives up.
import { fork } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { publishStatus } from '../agent/status/publish.js';
import { convergedDoc } from '../test/helpers/status.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

type ToWorker = { round: number };
type FromWorker = { ready: true } | { latencies: number[]; attempts: number[]; requests: number; pending: number };

const REV = 'd'.repeat(40);
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

if (process.env.BENCH_WORKER) await worker(JSON.parse(process.env.BENCH_WORKER) as { url: string; names: string[] });
else await main();

async function main(): Promise<void> {
  const counts = process.argv.slice(2).map(Number).filter(Boolean);
  const sizes = counts.length > 0 ? counts : [10, 50, 200];
  const rounds = Number(process.env.ROUNDS ?? 2);
  const workers = Number(process.env.WORKERS ?? 1);
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model}, Node ${process.version}; server: git http-backend per request on 127.0.0.1; hosts in ${workers} process(es); ${process.env.SPREAD_MS ? `starts spread over ${process.env.SPREAD_MS} ms` : 'all start at the same instant'}`,
  );
  const server = await startGitServer();
  try {
    for (const n of sizes) {
      const fleet = await createFleetRepo(server, `fleet-${n}`);
      await fleet.commit({ 'README.md': 'x\n' });
      const names = Array.from({ length: n }, (_, i) => `host-${String(i).padStart(3, '0')}`);
      const groups = Array.from({ length: Math.min(workers, n) }, (_, w) =>
        names.filter((_, i) => i % Math.min(workers, n) === w),
      );
      const children = groups.map((g) =>
        fork(fileURLToPath(import.meta.url), [], {
          env: { ...process.env, BENCH_WORKER: JSON.stringify({ url: server.url(`fleet-${n}`), names: g }) },
          execArgv: process.execArgv,
        }),
      );
      const next = (c: (typeof children)[number]) =>
        new Promise<FromWorker>((resolve, reject) => {
          c.once('message', (m) => resolve(m as FromWorker));
          c.once('exit', (code) => reject(new Error(`bench worker exited with ${code}`)));
        });
      await Promise.all(children.map(next));
      const latencies: number[] = [];
      const attempts: number[] = [];
      let requests = 0;
      let pending = 0;
      const t0 = performance.now();
      for (let round = 1; round <= rounds; round++) {
        const r0 = performance.now();
        const replies = children.map(next);
        for (const c of children) c.send({ round } satisfies ToWorker);
        let roundPending = 0;
        for (const r of await Promise.all(replies)) {
          if (!('latencies' in r)) throw new Error('unexpected worker message');
          latencies.push(...r.latencies);
          attempts.push(...r.attempts);
          requests += r.requests;
          roundPending += r.pending;
        }
        pending += roundPending;
        console.log(
          `  ${n} hosts, round ${round}: landed ${n - roundPending} of ${n}; ${((performance.now() - r0) / 1000).toFixed(1)} s until the last report landed or gave up`,
        );
      }
      const wall = performance.now() - t0;
      for (const c of children) c.kill();
      if (latencies.length === 0) latencies.push(NaN);
      console.log(
        `${n} hosts at once (x${rounds} rounds): ${n * rounds - pending} of ${n * rounds} reports landed, ${pending} not (cap); push latency p50 ${pct(latencies, 50).toFixed(0)} ms, p95 ${pct(latencies, 95).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms; attempts p50 ${pct(attempts, 50)}, p95 ${pct(attempts, 95)}, max ${Math.max(...attempts)}; ${(requests / (n * rounds)).toFixed(1)} requests per report; ${(wall / (n * rounds)).toFixed(0)} ms of wall time per report`,
      );
    }
  } finally {
    await server.stop();
  }
}

/** One process publishing for `names`, one round per message from the parent. */
async function worker(opts: { url: string; names: string[] }): Promise<void> {
  const log = memoryLogger([]);
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const hosts = await Promise.all(
    opts.names.map(async (name) => {
      const repo = new GitRepo({
        gitdir: join(await mkdtemp(join(tmpdir(), 'steward-bench-')), 'status.git'),
        url: opts.url,
        headers: {},
        http: createHttpClient({ timeoutMs: 60_000, stats }),
      });
      await repo.init();
      return { name, repo };
    }),
  );
  process.on('message', async (m: ToWorker) => {
    const before = stats.requests;
    const latencies: number[] = [];
    const attempts: number[] = [];
    let pending = 0;
    const capMs = process.env.CAP_S ? Number(process.env.CAP_S) * 1000 : 3_600_000;
    await Promise.all(
      hosts.map(async (h) => {
        await new Promise((r) => setTimeout(r, Math.random() * Number(process.env.SPREAD_MS ?? 0)));
        const now = new Date();
        const doc = convergedDoc(h.name, REV, now, { heartbeatSeconds: 900, durationMs: m.round });
        const s = performance.now();
        // Without CAP_S no deadline: the figure is how long the last of them takes, however long.
        try {
          const r = await publishStatus(h.repo, 'steward-status', doc, log, { attempts: 100_000, deadlineMs: capMs });
          latencies.push(performance.now() - s);
          attempts.push(r.attempts);
        } catch {
          pending++;
        }
      }),
    );
    process.send!({ latencies, attempts, requests: stats.requests - before, pending } satisfies FromWorker);
  });
  process.send!({ ready: true } satisfies FromWorker);
}

// Status branch figures (issue 5): push latency (p50, p95) and attempts with N hosts pushing at
// once through the real Git server (git http-backend behind Node's HTTP server, on this machine).
//   node --import @tapjs/typescript/import bench/status-push.ts [N ...]
import { mkdtemp } from 'node:fs/promises';
import { cpus } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { publishStatus } from '../agent/status/publish.js';
import { buildStatus } from '../agent/status/report.js';
import { emptyState } from '../agent/reconcile/state.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const counts = process.argv.slice(2).map(Number).filter(Boolean);
const sizes = counts.length > 0 ? counts : [10, 50]; // 200 by argument: minutes on a 2-core machine
const log = memoryLogger([]);
const REV = 'd'.repeat(40);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}; server: git http-backend per request on 127.0.0.1`);

const server = await startGitServer();
try {
  for (const n of sizes) {
    const fleet = await createFleetRepo(server, `fleet-${n}`);
    await fleet.commit({ 'README.md': 'x\n' });
    const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
    const hosts = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const repo = new GitRepo({ gitdir: join(await mkdtemp(join(tmpdir(), 'steward-bench-')), 'status.git'), url: server.url(`fleet-${n}`), headers: {}, http: createHttpClient({ timeoutMs: 60_000, stats }) });
        await repo.init();
        return { name: `host-${String(i).padStart(3, '0')}`, repo };
      }),
    );
    const latencies: number[] = [];
    const attempts: number[] = [];
    const rounds = Number(process.env.ROUNDS ?? 2);
    const t0 = performance.now();
    for (let round = 1; round <= rounds; round++) {
      const r0 = performance.now();
      await Promise.all(
        hosts.map(async (h) => {
          const now = new Date();
          const doc = buildStatus({ host: h.name, labels: {}, agentVersion: '0.1.0', heartbeatSeconds: 900, facts: {} }, { startedAt: now, durationMs: round, desiredRevision: REV, appliedRevision: REV, lastGoodRevision: REV, phase: 'Converged', bundleErrors: [], results: new Map(), notes: [] }, emptyState(), now);
          const s = performance.now();
          const r = await publishStatus(h.repo, 'steward-status', doc, log, { attempts: 200 });
          latencies.push(performance.now() - s);
          attempts.push(r.attempts);
        }),
      );
      if (process.env.ROUNDS) console.log(`  round ${round}: ${((performance.now() - r0) / 1000).toFixed(1)} s`);
    }
    const wall = performance.now() - t0;
    console.log(`${n} hosts at once (x${rounds} rounds): push latency p50 ${pct(latencies, 50).toFixed(0)} ms, p95 ${pct(latencies, 95).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms; attempts p50 ${pct(attempts, 50)}, max ${Math.max(...attempts)}; ${(stats.requests / (n * rounds)).toFixed(1)} requests per report; ${(wall / (n * rounds)).toFixed(0)} ms of wall time per report`);
  }
} finally {
  await server.stop();
}

// The cost of a staged-rollout gate check (issue 16) at fleet size: N hosts' status branches
// written into the server with `git fast-import` (one real Converged document each, labelled
// ring=canary for the first 5%, ring=early for the next 20%, the rest unlabelled), then a host
// of the last wave checks its gate for the head through the real code (reconcile/rollout.ts
// gateFor: readFleet over the real git http-backend, then the counting), first from a fresh
// store and then again with nothing changed, as a waiting host does on every poll. Prints
// figures; asserts nothing.
//   node --import ./test/loader/register.mjs bench/rollout-gate.ts [hosts=10 10000 ...]
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readRollout } from '../agent/manifest/rollout.js';
import { gateFor } from '../agent/reconcile/rollout.js';
import type { AgentContext } from '../agent/reconcile/context.js';
import type { RunRecord } from '../agent/reconcile/record.js';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';
import { prefillHostBranches } from '../test/helpers/prefill.js';

const exec = promisify(execFile);
const sizes = process.argv.slice(2).map(Number);
const HEAD = 'c'.repeat(40);
const { waves } = readRollout(`waves:
  - { name: canary, selector: { ring: canary }, minConverged: "100%", soak: 30s }
  - { name: early, selector: { ring: early }, minConverged: "50%", soak: 30s }
`);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await exec('git', ['--version'])).stdout.trim()}`,
);

for (const n of sizes.length > 0 ? sizes : [10, 10_000]) {
  const server = await startGitServer();
  const fleet = await createFleetRepo(server, 'fleet');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const name = (i: number) => `edge-${String(i).padStart(5, '0')}`;
  const ring = (i: number) => (i < n * 0.05 ? 'canary' : i < n * 0.25 ? 'early' : undefined);
  const byName = new Map(Array.from({ length: n }, (_, i) => [name(i), ring(i)]));
  const names = [...byName.keys()];
  // The documents are dated a minute ago (prefill), so the 30 s soaks have passed.
  const labelsOf = (h: string): Record<string, string> => {
    const r = byName.get(h);
    return r ? { ring: r } : {};
  };
  await prefillHostBranches(fleet.bare, names, HEAD, 1, labelsOf);
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const http = createHttpClient({ timeoutMs: 120_000, stats });
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-gate-')), 'status.git'),
    url: server.url('fleet'),
    headers: {},
    http,
  });
  await repo.init();
  const ctx = {
    status: repo,
    config: { host: 'edge-last', labels: {}, status: { branch: 'steward-status' }, source: { branch: 'main' } },
    source: { isDescendant: async () => false },
  } as unknown as AgentContext;
  const run = { now: () => new Date() } as unknown as RunRecord;
  for (const label of ['fresh store', 'again, nothing changed', 'again, after 1% of the hosts reported']) {
    if (label.includes('1%')) await moveSome(fleet.bare, names.slice(0, Math.max(1, n / 100)));
    const s0 = await server.stats();
    const c0 = { ...stats };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const verdict = await gateFor(ctx, run, HEAD, waves, 2);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const s1 = await server.stats();
    console.log(
      `${n} hosts, ${label}: gate ${verdict ? `${verdict.reason}: ${verdict.message}` : 'open'}; ${stats.requests - c0.requests} requests, ${((stats.bytesSent - c0.bytesSent) / 1024).toFixed(1)} KiB sent + ${((stats.bytesReceived - c0.bytesReceived) / 1024).toFixed(1)} KiB received, ${ms.toFixed(0)} ms, agent CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, server CPU ${((s1.cpuSeconds - s0.cpuSeconds) * 1000).toFixed(0)} ms`,
    );
  }
  await server.stop();
}

/** A new report on some hosts' branches (fast-import again: a moved tip each). */
async function moveSome(bare: string, names: string[]): Promise<void> {
  await prefillHostBranches(bare, names, HEAD, 1, () => ({}), true);
}

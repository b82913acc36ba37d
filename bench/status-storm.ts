// The status storm that used to be a test (hardening issue, item 0): N hosts publish at the same
// instant, R rounds; after each round every host's file must hold its newest report. Prints the
// round times, the most attempts one push needed and any lost update; asserts nothing.
//   node --import ./test/loader/register.mjs bench/status-storm.ts [hosts=50] [rounds=10]
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createHttpClient } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { publishStatus } from '../agent/status/publish.js';
import { convergedDoc } from '../test/helpers/status.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, gitOut, showFile, startGitServer } from '../test/helpers/git.js';

const n = Number(process.argv[2] ?? 50);
const rounds = Number(process.argv[3] ?? 10);
const REV = 'c'.repeat(40);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${n} hosts x ${rounds} rounds`,
);
const server = await startGitServer();
try {
  const own = await createFleetRepo(server, 'storm');
  await own.commit({ 'README.md': 'x\n' });
  const hosts = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const repo = new GitRepo({
        gitdir: join(await mkdtemp(join(tmpdir(), 'steward-storm-')), 'status.git'),
        url: server.url('storm'),
        headers: {},
        http: createHttpClient({ timeoutMs: 60_000 }),
      });
      await repo.init();
      return { name: `h${String(i).padStart(3, '0')}`, repo };
    }),
  );
  const log = memoryLogger([]);
  let lost = 0;
  let failed = 0;
  let maxAttempts = 0;
  for (let round = 1; round <= rounds; round++) {
    const t0 = performance.now();
    const now = new Date();
    const results = await Promise.all(
      hosts.map((h) =>
        publishStatus(h.repo, 'steward-status', convergedDoc(h.name, REV, now, { durationMs: round }), log).catch(
          () => undefined,
        ),
      ),
    );
    failed += results.filter((r) => r?.outcome !== 'pushed').length;
    maxAttempts = Math.max(maxAttempts, ...results.map((r) => r?.attempts ?? 0));
    const seen = await Promise.all(
      hosts.map(
        async (h) =>
          JSON.parse((await showFile(own.bare, 'steward-status', `hosts/${h.name}/status.json`)) ?? '{"lastRun":{}}')
            .lastRun.durationMs,
      ),
    );
    lost += seen.filter((r) => r !== round).length;
    console.log(`round ${round}: ${Math.round(performance.now() - t0)} ms`);
  }
  const commits = Number(await gitOut(own.bare, 'rev-list', '--count', 'steward-status'));
  console.log(
    `most attempts for one push: ${maxAttempts}; pushes that failed: ${failed}; lost updates: ${lost}; commits: ${commits} (expected ${n * rounds})`,
  );
} finally {
  await server.stop();
}

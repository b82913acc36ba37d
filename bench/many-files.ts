// 10,000 File resources written in one run, then pruned in one run (hardening issue, item 7):
// wall time, files per second, and what the state files cost. Prints numbers; asserts nothing.
//   node --import ./test/loader/register.mjs bench/many-files.ts [N]
// Uses the real Git server and the real filesystem (the temp dir's disk; see `df` below).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const n = Number(process.argv[2] ?? 10_000);
const fs = execFileSync('df', ['-T', tmpdir()]).toString().split('\n')[1]?.split(/\s+/)[1];
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${tmpdir()} on ${fs}`,
);
const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
const root = await mkdtemp(join(tmpdir(), 'steward-many-'));
const a = await makeAgent({ url: server.url('fleet'), extra: `files:\n  roots: [${root}]\n`, timeout: '60s' });
try {
  const doc = (i: number) =>
    JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name: `f${i}` },
      spec: { path: join(root, `d${i % 100}`, `f${i}.conf`), content: `value ${i}\n` },
    });
  const perFile = 500;
  const files: Record<string, string> = {};
  for (let k = 0; k < n / perFile; k++)
    files[`hosts/${a.host}/f${k}.yaml`] = Array.from({ length: perFile }, (_, j) => doc(k * perFile + j)).join(
      '\n---\n',
    );
  files[`hosts/${a.host}/keep.yaml`] = JSON.stringify({
    apiVersion: 'steward/v1',
    kind: 'File',
    metadata: { name: 'keep' },
    spec: { path: join(root, 'keep'), content: 'k\n' },
  });
  await fleet.commit(files);
  let t0 = performance.now();
  const r = await a.once();
  const write = performance.now() - t0;
  const written = [...r.outcome.results.values()].filter((x) => x.action === 'create' && x.status === 'Ready').length;
  const state = await stat(join(a.stateDir, 'state.json'));
  console.log(
    `write ${written} files in one run: ${(write / 1000).toFixed(1)} s, ${Math.round(written / (write / 1000))} files/s (${r.outcome.phase}); state.json ${(state.size / 1e6).toFixed(2)} MB`,
  );
  t0 = performance.now();
  const again = await a.once();
  console.log(
    `the same bundle again (nothing to change): ${((performance.now() - t0) / 1000).toFixed(2)} s (${again.outcome.phase})`,
  );
  const del: Record<string, null> = {};
  for (const path of Object.keys(files)) if (!path.endsWith('keep.yaml')) del[path] = null;
  await fleet.commit(del);
  t0 = performance.now();
  const p = await a.once();
  const prune = performance.now() - t0;
  const pruned = [...p.outcome.results.values()].filter((x) => x.status === 'Pruned').length;
  const left = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.conf')).length;
  console.log(
    `prune ${pruned} files in one run: ${(prune / 1000).toFixed(1)} s, ${Math.round(pruned / (prune / 1000))} files/s; ${left} .conf files left`,
  );
} finally {
  await server.stop();
}

// A first converge next to the Engine's own limit (issue 15): N busybox containers + 10 files
// applied by `steward once` (in-process, the real Git server and engine), and the same N
// containers created and started by the raw Engine API all at once (the limit), medians of 3.
//   node --import ./test/loader/register.mjs bench/first-converge.ts [containers=50] [rounds=3]
// Needs the testbed (test/testbed.sh). Prints figures; asserts nothing.
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { APPLY_PARALLEL } from '../agent/reconcile/apply.js';
import { SLEEPER, containerDoc, docker, fileDoc, makeAgent, removeContainers, uid } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const [containers = 50, rounds = 3] = process.argv.slice(2).map(Number);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, engine ${(await docker.version()).Version}; ${containers} containers, ${APPLY_PARALLEL} in flight`,
);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const server = await startGitServer();
const raw: number[] = [];
const steward: number[] = [];
const cpu: number[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    const names = Array.from({ length: containers }, (_, i) => `raw${i}-${uid()}`);
    let t0 = performance.now();
    await Promise.all(
      names.map(async (name) => {
        const c = await docker.createContainer({ name, Image: 'local/busybox:1', Cmd: SLEEPER });
        await c.start();
      }),
    );
    raw.push(performance.now() - t0);
    await removeContainers(...names);

    const fleet = await createFleetRepo(server, `fleet${round}`);
    const root = await mkdtemp(join(tmpdir(), 'steward-converge-'));
    const a = await makeAgent({ url: server.url(`fleet${round}`), extra: `files:\n  roots: [${root}]\n` });
    const tree: Record<string, string> = {};
    for (let i = 0; i < containers; i++)
      tree[`hosts/${a.host}/c${i}.yaml`] = containerDoc(`conv${i}-${a.host}`, { image: 'local/busybox:1' });
    for (let i = 0; i < 10; i++) tree[`hosts/${a.host}/f${i}.yaml`] = fileDoc(join(root, `f${i}`), `${i}\n`, `f${i}`);
    await fleet.commit(tree);
    const c0 = process.cpuUsage();
    t0 = performance.now();
    const r = await a.once();
    steward.push(performance.now() - t0);
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1000);
    if (r.outcome.phase !== 'Converged') console.log(`  round ${round}: ${r.outcome.phase}`);
    await a.cleanup();
  }
  const ratio = median(steward) / median(raw);
  console.log(`raw Engine API, ${containers} x create + start at once: ${raw.map((x) => x.toFixed(0)).join(', ')} ms`);
  console.log(
    `steward once, ${containers} containers + 10 files: ${steward.map((x) => x.toFixed(0)).join(', ')} ms (CPU of this process, Git server included: median ${median(cpu).toFixed(0)} ms)`,
  );
  console.log(
    `median ${median(steward).toFixed(0)} ms vs ${median(raw).toFixed(0)} ms: ${ratio.toFixed(2)}x the raw limit`,
  );
} finally {
  await server.stop();
}

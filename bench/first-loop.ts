// Figures for the first loop (issue 2). Prints numbers; asserts nothing.
//   node --import ./test/loader/register.mjs bench/first-loop.ts
// Needs the testbed (test/testbed.sh). Uses the real Git server over HTTP and the real engine.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { containerDoc, docker, makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const main = fileURLToPath(new URL('../dist/agent/main.js', import.meta.url));
const ms = (n: number) => `${n.toFixed(1)} ms`;
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await docker.version()).Version} engine`,
);

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
const a = await makeAgent({ url: server.url('fleet') });
try {
  // 1. one idle poll: nothing moved, nothing to report
  await fleet.commit({ [`hosts/${a.host}/one.yaml`]: containerDoc(`b1-${a.host}`, { image: 'local/busybox:1' }) });
  await a.once();
  await a.once(); // settles the report (create -> none)
  const before = { ...a.stats };
  const idle = await a.once();
  console.log(
    `idle poll: ${a.stats.requests - before.requests} request(s), ${a.stats.bytesSent - before.bytesSent} bytes sent, ${a.stats.bytesReceived - before.bytesReceived} bytes received (status: ${idle.published})`,
  );

  // 2. git push -> converged, for a 3-container change (the poll interval adds up to interval + jitter on top)
  const three = Object.fromEntries(
    [1, 2, 3].map((i) => [
      `hosts/${a.host}/c${i}.yaml`,
      containerDoc(`c${i}-${a.host}`, { image: 'local/busybox:1', env: { N: String(i) } }),
    ]),
  );
  const t0 = performance.now();
  await fleet.commit(three);
  const pushed = performance.now();
  const r = await a.once();
  const done = performance.now();
  console.log(
    `push -> converged, 3 new containers: ${ms(done - pushed)} run (${r.outcome.phase}; the push itself took ${ms(pushed - t0)})`,
  );
  const changed = Object.fromEntries(
    [1, 2, 3].map((i) => [
      `hosts/${a.host}/c${i}.yaml`,
      containerDoc(`c${i}-${a.host}`, { image: 'local/busybox:2', env: { N: String(i) } }),
    ]),
  );
  await fleet.commit(changed);
  const t1 = performance.now();
  const r2 = await a.once();
  console.log(
    `push -> converged, 3 containers recreated (image change): ${ms(performance.now() - t1)} run (${r2.outcome.phase})`,
  );

  // 3. a no-change run with 50 containers
  const fifty = Object.fromEntries(
    Array.from({ length: 50 }, (_, i) => [
      `hosts/${a.host}/f${i}.yaml`,
      containerDoc(`f${i}-${a.host}`, { image: 'local/busybox:1' }),
    ]),
  );
  await fleet.commit(fifty);
  await a.once();
  await a.once();
  const walls: number[] = [];
  const cpuTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    await a.once();
    walls.push(performance.now() - w0);
    const c = process.cpuUsage(c0);
    cpuTimes.push((c.user + c.system) / 1000);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(
    `no-change run, ${(await a.containers()).length} containers: wall ${ms(median(walls))}, agent CPU ${ms(median(cpuTimes))} (median of 5)`,
  );

  // 4. RSS of `steward run` after 100 idle polls
  const cfg = await readFile(a.configFile, 'utf8');
  await writeFile(a.configFile, cfg.replace('interval: 1s', 'interval: 100ms'));
  const daemon = spawn(process.execPath, [main, 'run', '--config', a.configFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let runs = 0;
  const rss = async () =>
    Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${daemon.pid}/status`, 'utf8'))![1]) / 1024;
  const samples: Record<number, number> = {};
  await new Promise<void>((resolve) => {
    daemon.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (!line.includes('"run finished')) continue;
        runs += 1;
        if ([1, 10, 100].includes(runs)) void rss().then((v) => (samples[runs] = v));
        if (runs === 100) resolve();
      }
    });
  });
  await new Promise((r) => setTimeout(r, 200));
  daemon.kill('SIGTERM');
  console.log(
    `steward run RSS (${(await a.containers()).length} containers, idle polls every 100ms): after 1 poll ${samples[1]?.toFixed(0)} MiB, after 10 ${samples[10]?.toFixed(0)} MiB, after 100 ${samples[100]?.toFixed(0)} MiB`,
  );
} finally {
  await a.cleanup();
  await server.stop();
}

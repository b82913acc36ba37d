// The idle daemon (issue 15): RSS and CPU of `steward run` polling a repository that does not move.
//   node --import ./test/loader/register.mjs bench/idle.ts [containers=10] [polls=1000] [files=10]
// CHANGE_AT=N pushes a large change after poll N (50 MiB of blobs, 500 File manifests);
// TRACE_EVERY=N prints RSS every N polls; ECHO_GC=1 prints the lines of --trace-gc (in STEWARD).
// STEWARD='<command>' runs another build (default: node dist/agent/main.js; e.g. the packaged
// agent's bin/steward); NODE_OPTIONS and the like pass through. Needs the testbed
// (test/testbed.sh) and `npm run build`. Polls every 100 ms (the shortest interval the config
// takes). RSS from /proc/<pid>/status after polls 1, 10, 100, 1,000, 10,000; daemon CPU
// (utime + stime from /proc/<pid>/stat) between poll 2 and poll N+2, divided by N. Prints
// figures; asserts nothing. SNAPSHOT_AT=N sends the daemon SIGUSR2 after poll N: with
// STEWARD='node --heapsnapshot-signal=SIGUSR2 ...' it writes a heap snapshot into its cwd.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containerDoc, docker, makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const [containers = 10, polls = 1000, files = 10] = process.argv.slice(2).map(Number);
const command = process.env.STEWARD?.split(' ').filter(Boolean) ?? [
  process.execPath,
  fileURLToPath(new URL('../dist/agent/main.js', import.meta.url)),
];
const snapshotAt = Number(process.env.SNAPSHOT_AT ?? 0); // sends SIGUSR2 after that poll
const traceEvery = Number(process.env.TRACE_EVERY ?? 0); // prints anonymous and file-backed RSS every N polls
const changeAt = Number(process.env.CHANGE_AT ?? 0); // after that poll, pushes 50 MiB of blobs and 500 File manifests
const TICK = 100; // clock ticks per second (getconf CLK_TCK on Linux)
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, bench node ${process.version}, engine ${(await docker.version()).Version}; agent: ${command.join(' ')}`,
);

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
const root = await mkdtemp(join(tmpdir(), 'steward-idle-root-'));
const a = await makeAgent({ url: server.url('fleet'), interval: '100ms', extra: `files:\n  roots: [${root}]\n` });
try {
  const tree: Record<string, string> = {};
  for (let i = 0; i < containers; i++)
    tree[`hosts/${a.host}/c${i}.yaml`] = containerDoc(`idle${i}-${a.host}`, { image: 'local/busybox:1' });
  for (let i = 0; i < files; i++)
    tree[`hosts/${a.host}/f${i}.yaml`] = JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name: `f${i}` },
      spec: { path: join(root, `f${i}.conf`), content: `file ${i}\n` },
    });
  await fleet.commit(tree);
  const t0 = performance.now();
  await a.once();
  console.log(
    `first converge (in-process, ${containers} containers + ${files} files): ${(performance.now() - t0).toFixed(0)} ms`,
  );
  await a.once();

  const [cmd, ...args] = command;
  const daemon = spawn(cmd!, [...args, 'run', '--config', a.configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const proc = async (f: string) => readFile(`/proc/${daemon.pid}/${f}`, 'utf8');
  const rss = async () => Number(/VmRSS:\s+(\d+)/.exec(await proc('status'))![1]) / 1024;
  const cpuMs = async () => {
    const fields = (await proc('stat')).replace(/^.*\) /s, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICK; // utime, stime
  };
  const split = (st: string) =>
    ['RssAnon', 'RssFile']
      .map((k) => `${k} ${(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1]) / 1024).toFixed(1)} MiB`)
      .join(', ');
  const marks = [1, 10, 100, 1000, 10000].filter((m) => m <= polls + 2);
  const samples: Array<[number, number]> = [];
  let cpu2 = 0;
  let cpuEnd = 0;
  let runs = 0;
  let buf = '';
  const started = performance.now();
  // The large change of issue 15: a 50 MiB pack and a bundle of 510 resources, then idle again.
  const largeChange = async (n: number) => {
    const tree: Record<string, string | Buffer> = {};
    for (let i = 0; i < 50; i++) tree[`assets/blob-${i}.bin`] = randomBytes(2 ** 20);
    for (let i = 0; i < 500; i++)
      tree[`hosts/${a.host}/big${i}.yaml`] =
        `apiVersion: steward/v1\nkind: File\nmetadata: { name: big${i} }\nspec:\n  path: ${join(root, `big${i}.conf`)}\n  content: "big ${i}\\n"\n`;
    await fleet.commit(tree);
    console.log(`  pushed the large change after poll ${n}, now at poll ${runs}: ${split(await proc('status'))}`);
  };
  await new Promise<void>((resolve, reject) => {
    daemon.once('exit', (code) => reject(new Error(`steward run exited with ${code} after ${runs} polls`)));
    daemon.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) {
        if (process.env.ECHO_GC && /Scavenge|Mark-Compact|Mark-sweep|Mark-Sweep/.test(line))
          console.log(`  [poll ${runs}] ${line.replace(/^\[\d+:0x[0-9a-f]+\] */, '')}`);
        if (!line.includes('"run finished')) continue;
        runs += 1;
        const n = runs;
        if (marks.includes(n)) void rss().then((v) => samples.push([n, v]));
        if (traceEvery > 0 && n % traceEvery === 0)
          void proc('status').then((st) => console.log(`  poll ${n}: ${split(st)}`));
        if (n === changeAt) void largeChange(n);
        if (n === snapshotAt) daemon.kill('SIGUSR2'); // with --heapsnapshot-signal=SIGUSR2 in STEWARD
        if (n === 2) void cpuMs().then((v) => (cpu2 = v));
        if (n % 1000 === 0) console.log(`  ... ${n} polls, ${((performance.now() - started) / 1000).toFixed(0)} s`);
        if (n === polls + 2)
          void cpuMs().then((v) => {
            cpuEnd = v;
            resolve();
          });
      }
    });
  });
  await new Promise((r) => setTimeout(r, 300));
  const status = await proc('status');
  const mib = (k: string) => (Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1]) / 1024).toFixed(1);
  console.log(
    `at the end: RSS anonymous ${mib('RssAnon')} MiB, file-backed ${mib('RssFile')} MiB; peak RSS ${mib('VmHWM')} MiB`,
  );
  daemon.removeAllListeners('exit');
  daemon.kill('SIGTERM');
  samples.sort((x, y) => x[0] - y[0]);
  console.log(
    `steward run, ${containers} containers + ${files} files, idle polls every 100 ms: RSS ${samples.map(([n, v]) => `${v.toFixed(1)} MiB after ${n}`).join(', ')}`,
  );
  console.log(
    `daemon CPU per idle poll (poll 2 to ${polls + 2}): ${((cpuEnd - cpu2) / polls).toFixed(2)} ms (${(cpuEnd - cpu2).toFixed(0)} ms over ${polls} polls, ${((performance.now() - started) / 1000).toFixed(0)} s wall)`,
  );
} finally {
  await a.cleanup();
  await server.stop();
}

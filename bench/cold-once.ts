// A cold `steward once` that changes nothing (issue 15): what a cron job or a systemd timer pays
// each time, and what every `plan`, `validate` and `status` starts with. Converges N containers
// (default 10) once, then runs `steward once` ROUNDS times (default 3) as a fresh process and
// prints the median wall time and CPU (user + system, from the child's rusage), plus a cold
// `steward version` (start and module load alone). Prints figures; asserts nothing.
//   npm run -s build && node --import ./test/loader/register.mjs bench/cold-once.ts [containers] [rounds]
// STEWARD='<command>' runs another build (default: node dist/agent/main.js), e.g. the bundle:
// STEWARD='node --max-semi-space-size=1 --no-opt dist/steward/steward.js'. Needs the testbed.
import { spawn } from 'node:child_process';
import { cpus, tmpdir, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { containerDoc, docker, makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const [containers = 10, rounds = 3] = process.argv.slice(2).map(Number);
const command = process.env.STEWARD?.split(' ').filter(Boolean) ?? [
  process.execPath,
  fileURLToPath(new URL('../dist/agent/main.js', import.meta.url)),
];
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, bench node ${process.version}, engine ${(await docker.version()).Version}; agent: ${command.join(' ')}`,
);

/** Runs the agent with `args` under /usr/bin/time; wall and CPU seconds of the child. */
function timed(args: string[]): Promise<{ code: number; wall: number; cpu: number; rss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'TIME %e %U %S %M', ...command, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TMPDIR: tmpdir() },
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const m = /TIME (\S+) (\S+) (\S+) (\d+)/.exec(err);
      if (!m) return reject(new Error(`no timing from /usr/bin/time: ${err.slice(-300)}`));
      resolve({ code: code ?? -1, wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rss: Number(m[4]) / 1024 });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
function report(label: string, runs: Array<{ code: number; wall: number; cpu: number; rss: number }>) {
  console.log(
    `${label}: median of ${runs.length}: ${median(runs.map((r) => r.wall)).toFixed(2)} s wall, ${median(runs.map((r) => r.cpu)).toFixed(2)} s CPU, peak RSS ${median(runs.map((r) => r.rss)).toFixed(0)} MiB (exit codes ${runs.map((r) => r.code).join(', ')})`,
  );
}

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
const a = await makeAgent({ url: server.url('fleet'), interval: '100ms' });
try {
  const tree: Record<string, string> = {};
  for (let i = 0; i < containers; i++)
    tree[`hosts/${a.host}/c${i}.yaml`] = containerDoc(`cold${i}-${a.host}`, { image: 'local/busybox:1' });
  await fleet.commit(tree);
  await a.once();
  await a.once();
  const versions = [];
  for (let i = 0; i < rounds; i++) versions.push(await timed(['version']));
  report('steward version (start and load only)', versions);
  const onces = [];
  for (let i = 0; i < rounds; i++) onces.push(await timed(['once', '--config', a.configFile]));
  report(`steward once, no change, ${containers} containers`, onces);
} finally {
  await a.cleanup();
  await server.stop();
}

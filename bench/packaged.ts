// The packaged agent (out/steward-<version>-linux-<arch>.tar.gz: the bundle on its own Node.js
// runtime): package sizes and RSS after 1, 10 and 100 idle polls of `steward run`.
//   bash packaging/build.sh && node --import ./test/loader/register.mjs bench/packaged.ts
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { containerDoc, makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const exec = promisify(execFile);
const out = new URL('../out/', import.meta.url).pathname;
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}`);
for (const f of (await readdir(out)).filter((f) => /\.(deb|tar\.gz)$/.test(f)).sort())
  console.log(`${f}: ${((await stat(join(out, f))).size / 2 ** 20).toFixed(1)} MiB`);
const arch = process.arch === 'x64' ? 'amd64' : 'arm64';
const tarball = (await readdir(out)).find((f) => f.endsWith(`linux-${arch}.tar.gz`))!;
const root = await mkdtemp(join(tmpdir(), 'steward-pkg-'));
await exec('tar', ['-xzf', join(out, tarball), '-C', root]);
const lib = join(root, 'usr/lib/steward');

const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
const a = await makeAgent({ url: server.url('fleet'), interval: '100ms' });
try {
  await fleet.commit(
    Object.fromEntries(
      [1, 2, 3].map((i) => [
        `hosts/${a.host}/c${i}.yaml`,
        containerDoc(`pkg${i}-${a.host}`, { image: 'local/busybox:1' }),
      ]),
    ),
  );
  const t0 = performance.now();
  const daemon = spawn(join(lib, 'node'), [join(lib, 'steward.mjs'), 'run', '--config', a.configFile], {
    env: { ...process.env, LD_LIBRARY_PATH: join(lib, 'lib') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rss = async () =>
    Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${daemon.pid}/status`, 'utf8'))![1]) / 1024;
  const samples: Record<number, number> = {};
  let runs = 0;
  let firstRun = 0;
  await new Promise<void>((resolve) => {
    daemon.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (!line.includes('"run finished')) continue;
        runs += 1;
        if (runs === 1) firstRun = performance.now() - t0;
        if ([1, 10, 100].includes(runs)) void rss().then((v) => (samples[runs] = v));
        if (runs === 100) resolve();
      }
    });
  });
  await new Promise((r) => setTimeout(r, 200));
  daemon.kill('SIGTERM');
  console.log(
    `packaged agent (${tarball}, its own node): first run done ${firstRun.toFixed(0)} ms after exec; RSS after 1 poll ${samples[1]?.toFixed(0)} MiB, after 10 ${samples[10]?.toFixed(0)} MiB, after 100 ${samples[100]?.toFixed(0)} MiB (3 containers, polls every 100 ms)`,
  );
  await writeFile('/dev/null', '');
} finally {
  await a.cleanup();
  await server.stop();
}

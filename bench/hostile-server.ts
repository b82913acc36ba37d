// Peak RSS and wall time of `steward once` (dist, Node as on this machine) against hostile Git
// servers on loopback (hardening issue, items 3 and 4). Prints numbers; asserts nothing.
//   node --import ./test/loader/register.mjs bench/hostile-server.ts
// The servers: an ls-refs answer without end (as fast as the socket takes it), one that drips a
// byte every 50 ms, and a fetch answering with 3 GB of junk on the pack band (default
// source.maxPackSize; MAX_PACK=128MiB sets another).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHostileServer, type Fault } from '../test/helpers/hostile.js';

const main = fileURLToPath(new URL('../dist/agent/main.js', import.meta.url));
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; timeout 2s`,
);
for (const [fault, limit] of [
  ['endless-refs', undefined],
  ['drip-refs', undefined],
  ['junk-pack', 3 * 1024 ** 3],
] as Array<[Fault, number | undefined]>) {
  const server = await startHostileServer(fault, limit ? { limitBytes: limit } : {});
  const dir = await mkdtemp(join(tmpdir(), 'steward-bench-hostile-'));
  const config = join(dir, 'agent.yaml');
  await writeFile(
    config,
    `host: bench\nsource:\n  url: ${server.url}\n  interval: 1s\n  timeout: 2s\n${process.env.MAX_PACK ? `  maxPackSize: ${process.env.MAX_PACK}\n` : ''}stateDir: ${join(dir, 'state')}\nstatus: { enabled: false }\n`,
  );
  const t0 = Date.now();
  const child = spawn(process.execPath, [main, 'once', '--config', config], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let peak = 0;
  const sample = setInterval(async () => {
    const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => ''));
    if (m) peak = Math.max(peak, Number(m[1]) / 1024);
  }, 20);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearInterval(sample);
  const codes = [
    ...new Set(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { code?: string }).code)
        .filter(Boolean),
    ),
  ];
  const packs = await readdir(join(dir, 'state', 'source.git', 'objects', 'pack')).catch(() => []);
  console.log(
    `${fault}: exit ${code} after ${Date.now() - t0} ms, peak RSS ${Math.round(peak)} MiB, server sent ${(server.sent() / 2 ** 20).toFixed(0)} MiB, codes ${codes.join(' ')}, packs left: ${packs.length}`,
  );
  await server.stop();
}

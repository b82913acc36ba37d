// Peak RSS and wall time of a `steward once` (dist, Node as on this machine) whose first fetch is
// a large pack: PACK_MIB MiB (default 50) of incompressible blobs beside 10 File manifests, on
// the test Git server (git http-backend, protocol v2). Then a second commit that changes one
// manifest: the incremental fetch. Prints numbers; asserts nothing.
//   npm run -s build && node --import ./test/loader/register.mjs bench/large-fetch.ts
// STEWARD_MAIN=/path/to/dist/agent/main.js measures another build (the figures before a change);
// NODE_FLAGS='--max-semi-space-size=1 --no-opt' passes V8 flags to it; RESOURCES=500 makes the
// bundle 500 File manifests instead of 10.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';

const main = process.env.STEWARD_MAIN ?? fileURLToPath(new URL('../dist/agent/main.js', import.meta.url));
const packMiB = Number(process.env.PACK_MIB ?? 50);
const resources = Number(process.env.RESOURCES ?? 10); // File manifests beside the blobs
const flags = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean); // V8 flags for the agent
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${flags.join(' ')} ${main}`,
);
const server = await startGitServer();
const fleet = await createFleetRepo(server, 'large');
const dir = await mkdtemp(join(tmpdir(), 'steward-bench-large-'));
const outDir = await mkdtemp(join(tmpdir(), 'steward-bench-large-out-'));
const files: Record<string, string | Buffer> = {};
for (let i = 0; i < packMiB; i++) files[`assets/blob-${i}.bin`] = randomBytes(1024 * 1024);
for (let i = 0; i < resources; i++)
  files[`hosts/bench/file-${i}.yaml`] =
    `apiVersion: steward/v1\nkind: File\nmetadata: { name: f${i} }\nspec:\n  path: ${join(outDir, `f${i}.txt`)}\n  content: "file ${i}\\n"\n`;
await fleet.commit(files);
const config = join(dir, 'agent.yaml');
await writeFile(
  config,
  `host: bench\nsource:\n  url: ${server.url('large')}\n  paths: [hosts/bench]\n  timeout: 30s\n  maxPackSize: ${packMiB + 16}MiB\nstateDir: ${join(dir, 'state')}\nfiles: { roots: [${outDir}] }\nstatus: { enabled: false }\n`,
);

async function once(label: string): Promise<void> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [...flags, main, 'once', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  let peak = 0;
  const sample = setInterval(async () => {
    const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => ''));
    if (m) peak = Math.max(peak, Number(m[1]) / 1024);
  }, 10);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearInterval(sample);
  const packs = (await readdir(join(dir, 'state', 'source.git', 'objects', 'pack')).catch(() => [])).filter((f) =>
    f.endsWith('.pack'),
  );
  const written = (await readdir(outDir).catch(() => [])).length;
  console.log(
    `${label}: exit ${code} after ${Date.now() - t0} ms, peak RSS ${Math.round(peak)} MiB, packs ${packs.length}, files written ${written}`,
  );
  if (code !== 0)
    console.log(
      out
        .split('\n')
        .filter((l) => l.includes('error'))
        .slice(0, 3)
        .join('\n'),
    );
}

await once(`first run, ${packMiB} MiB pack, ${resources} File resources`);
await fleet.commit({
  'hosts/bench/file-0.yaml': files['hosts/bench/file-0.yaml']!.toString().replace('file 0', 'file 0 changed'),
});
await once('second run, one manifest changed');
await once('third run, nothing changed');
await server.stop();

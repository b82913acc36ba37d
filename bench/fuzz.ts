// Fuzzes what a host does with a commit before touching anything (hardening issue): decode +
// parse + validate + resolve of mutated manifests, and parse + validate of mutated agent
// configs. A crash is any exception that is not a StewardError result. Seeded: input i of seed
// s is the same on every run, so a failure can be replayed.
//   node --import ./test/loader/register.mjs bench/fuzz.ts [inputs=1000000] [seed=1] [from=0]   (inputs from..from+inputs-1)
//   node --import ./test/loader/register.mjs bench/fuzz.ts --replay I [seed]   (prints input I and runs it)
import { cpus, totalmem } from 'node:os';
import { parseConfig } from '../agent/config/load.js';
import { StewardErrors } from '../agent/errors.js';
import { buildBundle } from '../agent/manifest/bundle.js';
import { decodeManifest } from '../agent/manifest/text.js';
import { forbiddenPaths, resolveBundle } from '../agent/reconcile/resolve.js';
import { Fingerprint } from '../agent/host/fingerprint.js';
import { FileDriver } from '../agent/resources/file.js';

const replay = process.argv[2] === '--replay' ? Number(process.argv[3]) : undefined;
const total = replay === undefined ? Number(process.argv[2] ?? 1_000_000) : 1;
const seed = Number((replay === undefined ? process.argv[3] : process.argv[4]) ?? 1);
const from = replay === undefined ? Number(process.argv[4] ?? 0) : 0;

const manifests = [
  `apiVersion: steward/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  image: local/busybox:1\n  command: [httpd, -f]\n  env: { A: "1", B: two }\n  ports: ["8080:80", "127.0.0.1:53:53/udp"]\n  volumes: ["/opt/kiosk/data:/data:ro", "cache:/cache"]\n  restart: always\n  healthcheck: { test: [CMD, true], interval: 10s }\n  dependsOn: [File/cfg]\n  restartOn: [File/cfg]\n`,
  `apiVersion: steward/v1\nkind: File\nmetadata: { name: cfg }\nspec:\n  path: /etc/kiosk/app.ini\n  content: |\n    color=blue\n    size=3\n  mode: "0640"\n  owner: root\n---\napiVersion: steward/v1\nkind: File\nmetadata: { name: page }\nspec: { path: /opt/kiosk/index.html, source: page.html }\n`,
  `apiVersion: steward/v1\nkind: Service\nmetadata: { name: kiosk }\nspec:\n  unit: kiosk.service\n  content: "[Service]\\nExecStart=/bin/true\\n"\n  enabled: true\n  state: running\n  dependsOn: [File/cfg]\n  probe: { http: { url: "http://127.0.0.1:8080/" }, timeout: 2s }\n`,
  `base: &base { image: local/busybox:1, restart: always }\n---\napiVersion: steward/v1\nkind: Container\nmetadata: { name: db }\nspec:\n  <<: { image: x }\n  env: &e { K: v }\n  labels: *e\n`,
  `{"apiVersion":"steward/v1","kind":"File","metadata":{"name":"j"},"spec":{"path":"/etc/kiosk/j","content":"x","ensure":"absent"}}`,
];
const configs = [
  `host: edge-1\nlabels: { site: berlin, role: kiosk }\nsource:\n  url: https://git.example.com/fleet.git\n  branch: main\n  paths: [hosts/\${host}, groups/\${labels.role}]\n  auth: { username: steward, tokenFile: /etc/steward/token }\n  interval: 60s\n  jitter: 10s\nstatus: { branch: steward-status, heartbeat: 15m }\nfiles: { roots: [/etc/kiosk, /opt/kiosk] }\nrollback: auto\n`,
  `source: { url: "https://u:p@g/f.git", schedule: "*/5 * * * *", timeout: 2s, maxPackSize: 64MiB }\nstateDir: /var/lib/steward\n`,
];
const tokens = [
  '&a ',
  '*a',
  '*b',
  '<<: *a\n',
  '\n---\n',
  '? [x, y]\n: z\n',
  '[',
  ']',
  '{',
  '}',
  '"',
  "'",
  ':',
  '- ',
  '\n  ',
  '\0',
  '\xff\xfe',
  '!!binary ',
  '!!js/function ',
  '!!str ',
  '%YAML 1.1\n',
  '#',
  '|\n  ',
  '>\n  ',
  '${host}',
  '${labels.x}',
  '../',
  '/etc/steward/agent.yaml',
  '\\u0000',
  '1e999',
  '-0',
  '0x1F',
  '~',
  'null',
  '.inf',
  'dependsOn: [File/cfg]',
  'restartOn: [Service/kiosk]',
];

/** mulberry32: small, fast, seeded. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(base: string, r: () => number): Buffer {
  let b = Buffer.from(base, 'utf8');
  const steps = 1 + Math.floor(r() * 4);
  for (let k = 0; k < steps; k++) {
    const at = Math.floor(r() * (b.length + 1));
    const op = Math.floor(r() * 7);
    if (op === 0)
      b = Buffer.concat([
        b.subarray(0, at),
        Buffer.from(tokens[Math.floor(r() * tokens.length)]!, 'latin1'),
        b.subarray(at),
      ]);
    else if (op === 1 && b.length > 0) b[Math.min(at, b.length - 1)] = Math.floor(r() * 256);
    else if (op === 2)
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + Math.floor(r() * 40)))]);
    else if (op === 3)
      b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + Math.floor(r() * 80)), b.subarray(at)]);
    else if (op === 4)
      b = Buffer.concat([b.subarray(0, at), Buffer.from('['.repeat(1 + Math.floor(r() * 200))), b.subarray(at)]);
    else if (op === 5) {
      const n = 2 + Math.floor(r() * 5);
      b = Buffer.concat([
        Buffer.from(
          Array.from(
            { length: n },
            (_, i) => `l${i}: &l${i} [${Array.from({ length: 9 }, () => (i === 0 ? 'x' : `*l${i - 1}`)).join(', ')}]`,
          ).join('\n') + '\n',
        ),
        b,
      ]);
    } else b = Buffer.concat([b, Buffer.from('\n'), Buffer.from(manifests[Math.floor(r() * manifests.length)]!)]);
  }
  return b;
}

const config = parseConfig(configs[0]!, '/etc/steward/agent.yaml', { hostname: 'edge-1' });
// The File driver's admission check is what a manifest's paths meet; no host is touched.
const drivers = {
  File: new FileDriver(
    config.stateDir,
    { roots: config.files.roots, forbidden: forbiddenPaths(config) },
    new Fingerprint(Buffer.alloc(32)),
  ),
};
const readRepoFile = async (path: string) => {
  if (path.endsWith('.html')) return Buffer.from('<h1>hi</h1>');
  throw new Error(`${path} does not exist at this commit`);
};

interface Result {
  crashed?: string;
  ms: number;
}
async function runOne(i: number): Promise<{ kind: string; input: Buffer; result: Result }> {
  const r = rng(seed * 1_000_003 + i);
  const isConfig = r() < 0.25;
  const corpus = isConfig ? configs : manifests;
  const input = mutate(corpus[Math.floor(r() * corpus.length)]!, r);
  const t0 = performance.now();
  let crashed: string | undefined;
  try {
    if (isConfig) {
      const decoded = decodeManifest('agent.yaml', input);
      if ('text' in decoded) {
        try {
          parseConfig(decoded.text, '/etc/steward/agent.yaml', { hostname: 'edge-1' });
        } catch (err) {
          if (!(err instanceof StewardErrors)) throw err;
        }
      }
    } else {
      const decoded = decodeManifest('hosts/edge-1/m.yaml', input);
      if ('text' in decoded) {
        const built = buildBundle('a'.repeat(40), [{ path: 'hosts/edge-1/m.yaml', text: decoded.text }]);
        if (built.bundle) await resolveBundle(built.bundle, drivers, readRepoFile);
      }
    }
  } catch (err) {
    crashed = `${(err as Error).name}: ${(err as Error).message.slice(0, 200)}`;
  }
  return {
    kind: isConfig ? 'config' : 'manifest',
    input,
    result: { ...(crashed ? { crashed } : {}), ms: performance.now() - t0 },
  };
}

if (replay !== undefined) {
  const { kind, input, result } = await runOne(replay);
  console.log(
    `input ${replay} (seed ${seed}, ${kind}, ${input.length} bytes):\n${JSON.stringify(input.toString('latin1'))}\n-> ${result.crashed ?? 'no crash'} (${result.ms.toFixed(2)} ms)`,
  );
} else {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; inputs ${from}..${from + total - 1}, seed ${seed}`,
  );
  const crashes: Array<{ i: number; crashed: string }> = [];
  let slowest = { i: -1, ms: 0, kind: '' };
  const t0 = performance.now();
  for (let i = from; i < from + total; i++) {
    const { kind, result } = await runOne(i);
    if (result.crashed) crashes.push({ i, crashed: result.crashed });
    if (result.ms > slowest.ms) slowest = { i, ms: result.ms, kind };
    if ((i + 1 - from) % 100_000 === 0)
      console.log(
        `  ${i + 1 - from} inputs, ${crashes.length} crashes, ${Math.round((i + 1 - from) / ((performance.now() - t0) / 1000))} inputs/s`,
      );
  }
  const s = (performance.now() - t0) / 1000;
  console.log(
    `${total} inputs in ${s.toFixed(0)} s: ${Math.round(total / s)} inputs/s; crashes: ${crashes.length}; slowest input: #${slowest.i} (${slowest.kind}) ${slowest.ms.toFixed(1)} ms (replay: --replay ${slowest.i} ${seed})`,
  );
  for (const c of crashes.slice(0, 20)) console.log(`  crash #${c.i}: ${c.crashed}`);
}

import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The layers of agent/, lowest first (README, "Development"). A module may import from its own
// layer and the ones below it, never from one above.
export const LAYERS = [
  ['errors.ts', 'log.ts', 'paths.ts', 'version.ts', 'duration.ts', 'order.ts', 'files.ts', 'types/'],
  ['manifest/'],
  ['config/'],
  ['host/'],
  ['source/'],
  ['resources/'],
  ['status/'],
  ['reconcile/'],
  ['daemon/'],
  ['cli/'],
  ['main.ts'],
];

const agent = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'agent');

function layerOf(file: string): number {
  const i = LAYERS.findIndex((names) => names.some((n) => (n.endsWith('/') ? file.startsWith(n) : file === n)));
  if (i < 0) throw new Error(`${file} is in no layer: add it to LAYERS and to the README`);
  return i;
}

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(full)));
    else if (e.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** Every module an agent file imports: relative ones as agent paths, packages by name. */
async function importsOf(file: string): Promise<Array<{ spec: string; target?: string }>> {
  const text = await readFile(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g)].map(
    (m) => m[1] ?? m[2]!,
  );
  return specs.map((spec) =>
    spec.startsWith('.')
      ? { spec, target: relative(agent, resolve(dirname(file), spec)).replace(/\.js$/, '.ts') }
      : { spec },
  );
}

t.test('layers point down: no module of agent/ imports from a layer above its own', async (t) => {
  const upward: string[] = [];
  const files = await sources(agent);
  t.ok(files.length > 40, `${files.length} modules read`);
  for (const file of files) {
    const from = relative(agent, file);
    for (const { target } of await importsOf(file)) {
      if (target && layerOf(target) > layerOf(from)) upward.push(`${from} -> ${target}`);
    }
  }
  t.same(upward, [], 'no upward import');
});

t.test('source/ is the only door to Git: nothing else imports isomorphic-git', async (t) => {
  const outside: string[] = [];
  for (const file of await sources(agent)) {
    const from = relative(agent, file);
    if (from.startsWith('source/')) continue;
    if ((await importsOf(file)).some((i) => i.spec === 'isomorphic-git' || i.spec.startsWith('isomorphic-git/')))
      outside.push(from);
  }
  t.same(outside, [], 'isomorphic-git is imported only under source/');
});

t.test('no module of agent/ loads node:fs/promises: files.ts gives its calls over node:fs', async (t) => {
  // On Node 26, node:fs/promises loads readline and the REPL's history: 1.4 MiB of idle RSS.
  const users: string[] = [];
  for (const file of await sources(agent)) {
    const text = await readFile(file, 'utf8');
    // A type-only import is erased at build time and loads nothing.
    if (
      /^\s*(?:import|export)\s(?!type\s)[^;]*?from\s+'(?:node:)?fs\/promises'|import\('(?:node:)?fs\/promises'\)|\bpromises\b[^;\n]*from\s+'(?:node:)?fs'/m.test(
        text,
      )
    )
      users.push(relative(agent, file));
  }
  t.same(users, [], 'node:fs/promises is not imported (agent/files.ts)');
});

t.test('the layer check finds an upward import (it can fail)', async (t) => {
  // manifest/ is below config/: an import of config/ from manifest/ must count as upward.
  t.ok(layerOf('config/load.ts') > layerOf('manifest/schema.ts'));
  t.throws(() => layerOf('newdir/x.ts'), /in no layer/, 'a module outside every layer is an error, not a pass');
});

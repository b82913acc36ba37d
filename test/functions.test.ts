import t from 'tap';
import { readdir } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { functionLengths } from './helpers/function-lengths.js';

// STYLE.md and the architecture issue: no function in agent/ over 60 lines. A long function is
// split into named steps; this test names the ones that are not.
const MAX_LINES = 60;
const agent = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'agent');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'types') out.push(...(await sources(full))); // agent/types is generated from the schemas
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.generated.ts')) out.push(full); // written by ajv
  }
  return out;
}

t.test(`no function in agent/ is longer than ${MAX_LINES} lines`, async (t) => {
  const files = await sources(agent);
  const all = (await Promise.all(files.map((f) => functionLengths(f, relative(agent, f))))).flat();
  t.ok(all.length > 200, `${all.length} functions read`);
  all.sort((a, b) => b.lines - a.lines);
  t.comment(
    'longest: ' +
      all
        .slice(0, 5)
        .map((f) => `${f.file}:${f.line} ${f.name} (${f.lines})`)
        .join(', '),
  );
  const long = all.filter((f) => f.lines > MAX_LINES).map((f) => `${f.file}:${f.line} ${f.name}: ${f.lines} lines`);
  t.same(long, [], 'split these into named steps');
});

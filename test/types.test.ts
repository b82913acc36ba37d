import t from 'tap';
import { readFile } from 'node:fs/promises';

t.test('agent/types is generated from the schemas and up to date (npm run gen:types)', async (t) => {
  // @ts-expect-error: a plain .mjs build script without type declarations
  const { render } = (await import('../schemas/gen-types.mjs')) as { render: () => Promise<Record<string, string>> };
  const files = await render();
  t.ok(Object.keys(files).length >= 5);
  for (const [path, text] of Object.entries(files)) t.equal(await readFile(path, 'utf8'), text, `${path} is current`);
});

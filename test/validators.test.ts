import t from 'tap';
import { readFile } from 'node:fs/promises';
import { checkSchema } from '../agent/manifest/schema.js';

t.test('the precompiled validators match the schemas (npm run gen:validators)', async (t) => {
  // @ts-expect-error: a plain .mjs build script without type declarations
  const { render } = (await import('../schemas/gen-validators.mjs')) as { render: () => Promise<string> };
  const path = new URL('../agent/manifest/validators.generated.ts', import.meta.url);
  t.equal(await readFile(path, 'utf8'), await render(), 'agent/manifest/validators.generated.ts is current');
});

t.test('a duration out of its range is refused with the bounds and the value', async (t) => {
  const problems = checkSchema('agent-config', { source: { url: 'https://git.example/fleet.git', interval: '1ms' } });
  t.same(
    problems.filter((p) => p.pointer === '/source/interval'),
    [{ pointer: '/source/interval', message: 'must be between 100ms and 24h (got 1ms)' }],
  );
  t.same(checkSchema('agent-config', { source: { url: 'https://git.example/fleet.git', interval: '30s' } }), []);
});

// Generates agent/types/*.ts from schemas/*.schema.json. The schemas are the source of truth;
// test/types.test.ts fails when the generated files are stale. Run: npm run gen:types
import { compile } from 'json-schema-to-typescript';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const schemas = join(root, 'schemas');
const out = join(root, 'agent', 'types');
const kinds = { 'agent-config': 'AgentConfigFile', container: 'ContainerResource', file: 'FileResource', service: 'ServiceResource', 'host-status': 'HostStatus' };

/** Renders every generated file, keyed by its path; exported for the staleness test. */
export async function render() {
  const files = {};
  for (const [base, name] of Object.entries(kinds)) {
    const schema = JSON.parse(await readFile(join(schemas, `${base}.schema.json`), 'utf8'));
    delete schema.$id; // resolve $refs against the folder, never over the network
    const ts = await compile(schema, name, {
      cwd: schemas,
      bannerComment: `/* Generated from schemas/${base}.schema.json by schemas/gen-types.mjs. Do not edit. */`,
      additionalProperties: false,
      format: true,
      declareExternallyReferenced: true,
      strictIndexSignatures: true,
      $refOptions: { resolve: { http: false } },
    });
    files[join(out, `${base}.ts`)] = ts;
  }
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await mkdir(out, { recursive: true });
  for (const [path, text] of Object.entries(await render())) await writeFile(path, text);
}

// Generates agent/types/*.ts from schemas/*.schema.json. The schemas are the source of truth;
// test/types.test.ts fails when the generated files are stale. Run: npm run gen:types
import { compile } from 'json-schema-to-typescript';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const schemas = join(root, 'schemas');
const out = join(root, 'agent', 'types');
// Every schema but the shared definitions; a kind's schema (schemas/<kind>.schema.json) becomes
// <Kind>Resource with its <Kind>Spec, so a new kind needs nothing here.
const NAMES = { 'agent-config': 'AgentConfigFile', 'host-status': 'HostStatus' };
const pascal = (base) => base.replace(/(^|-)([a-z])/g, (_, _d, c) => c.toUpperCase());
async function schemaNames() {
  const bases = (await readdir(schemas)).filter((f) => f.endsWith('.schema.json')).map((f) => f.slice(0, -12));
  return Object.fromEntries(bases.filter((b) => b !== 'common').sort().map((b) => [b, NAMES[b] ?? `${pascal(b)}Resource`]));
}

/** Renders every generated file, keyed by its path; exported for the staleness test. */
export async function render() {
  const files = {};
  for (const [base, name] of Object.entries(await schemaNames())) {
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

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding `schemas/` and `package.json`: found by walking up from this module, so it
 * is the same whether the agent runs from agent/*.ts (tests), dist/agent/*.js or a package.
 */
export const packageRoot: string = (() => {
  if (process.env.STEWARD_HOME) return process.env.STEWARD_HOME;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'schemas', 'agent-config.schema.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the schemas/ folder above ' + fileURLToPath(import.meta.url));
})();

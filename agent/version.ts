import { readFileSync } from 'node:fs';
import { packageRoot } from './paths.js';
import { join } from 'node:path';

/** The agent's version, from package.json (read once). */
export const agentVersion: string = (() => {
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8'));
    if (pkg && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // a bundled build without package.json beside it
  }
  return process.env.STEWARD_VERSION ?? '0.0.0';
})();

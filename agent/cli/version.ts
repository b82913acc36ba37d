import { agentVersion } from '../version.js';
import type { ExitCode, Io } from './common.js';

export const help = 'steward version';

export async function version(_argv: string[], io: Io): Promise<ExitCode> {
  io.out(`steward ${agentVersion} (node ${process.versions.node}, ${process.platform}/${process.arch})`);
  return 0;
}

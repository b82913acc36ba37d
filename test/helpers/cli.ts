import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI: npm test builds dist/ before the tests run. */
export const MAIN = fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `steward <args>` from dist/ to its end, as a user would: its exit code and output. Never
 * rejects (a non-zero exit is a result to assert on); a run past `timeoutMs` is killed.
 */
export function steward(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      {
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.env ? { env: opts.env } : {}),
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 120_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

import { createContext } from '../reconcile/context.js';
import { acquireLock, RUN_LOCK_WAIT_MS } from '../daemon/lock.js';
import { runOnce } from '../reconcile/run.js';
import { keepUndelivered, resumeUndelivered } from '../reconcile/undelivered.js';
import { args, configFrom, configOption, loggerFor, type ExitCode, type Io } from './common.js';

export const help = 'steward once [--config FILE]     one reconcile run, then exit (0 converged, 1 failed, 2 invalid)';

/** How long `steward once` waits at exit for notifications still being delivered. */
const ONCE_NOTIFY_MS = 5000;

export async function once(argv: string[], _io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, configOption);
  const config = await configFrom(values);
  const log = loggerFor(config, false);
  const ctx = await createContext(config, log, { signal });
  await resumeUndelivered(ctx);
  // Waits for a run of the daemon under way; never two reconciles at once.
  const release = await acquireLock(config.stateDir, 'run', RUN_LOCK_WAIT_MS);
  const report = await runOnce(ctx, { apply: true, signal }).finally(release);
  // The run is over and reported; its notifications get a few seconds to go out.
  await ctx.notifier?.drain(ONCE_NOTIFY_MS);
  await keepUndelivered(ctx); // what is still on its way goes out with the next run
  const phase = report.outcome.phase;
  if (phase === 'Invalid') return 2;
  // A new revision held for source.window is not a failure: the host is converged at its own.
  return phase === 'Converged' || (phase === 'Progressing' && report.outcome.waiting) ? 0 : 1;
}

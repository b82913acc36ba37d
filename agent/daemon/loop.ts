import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../log.js';
import { runOnce, type AgentContext, type RunReport } from '../reconcile/run.js';

export interface LoopOptions {
  /** Aborted by SIGTERM: the run under way finishes its current step, then the loop ends. */
  signal: AbortSignal;
  /** The context to use for the next run (a SIGHUP reload swaps it). */
  context: () => AgentContext;
  /** Called after every run (the watchdog and metrics hang here). */
  onRun?: (report: RunReport) => void;
  /** Stop after this many runs (tests and the bench). */
  maxRuns?: number;
  /** Called before each run; what it returns is called after it (the run lock). */
  beforeRun?: () => Promise<() => Promise<void>>;
}

const RETRY_FIRST_MS = 5_000;

/**
 * How long until the next run on an interval. A run whose resources failed with a transient
 * error (an image the registry does not serve yet, an engine restarting, a probe not passing
 * yet) is tried again sooner: 5 s, doubling with each such run in a row, never past the
 * interval. A stalled error waits the interval (only a new commit fixes it), and a failing Git
 * server has its own backoff (reconcile/sync.ts). Pure.
 */
export function nextRunDelayMs(report: RunReport | undefined, intervalMs: number, transientRuns: number): number {
  if (!report || transientRuns === 0 || !hasTransientFailure(report)) return intervalMs;
  return Math.min(intervalMs, RETRY_FIRST_MS * 2 ** (transientRuns - 1));
}

export function hasTransientFailure(report: RunReport): boolean {
  return [...report.outcome.results.values()].some((r) => r.error?.retry === 'transient' && r.status !== 'Ready');
}

/**
 * Poll, reconcile, report, forever: one run at a time, on an interval or a cron schedule, each
 * delayed by a random jitter so a fleet does not hit the Git server in step. A run never
 * throws out of here; the loop only ends when the signal aborts.
 */
export async function runLoop(opts: LoopOptions): Promise<number> {
  let runs = 0;
  let last: RunReport | undefined;
  let transientRuns = 0;
  const log = (): Logger => opts.context().log.child({ component: 'daemon' });
  let wake: (() => void) | undefined;
  let due = false;
  let task: ScheduledTask | undefined;
  let scheduleOf: string | undefined;

  const ensureSchedule = () => {
    const schedule = opts.context().config.source.schedule;
    if (schedule === scheduleOf) return;
    void task?.destroy();
    task = undefined;
    scheduleOf = schedule;
    if (schedule) {
      task = cron.schedule(
        schedule,
        () => {
          due = true;
          wake?.();
        },
        { noOverlap: true, name: 'steward-poll' },
      );
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        opts.signal.removeEventListener('abort', done);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      opts.signal.addEventListener('abort', done, { once: true });
      wake = done;
    });

  try {
    while (!opts.signal.aborted) {
      const ctx = opts.context();
      try {
        const release = await opts.beforeRun?.();
        try {
          const report = await runOnce(ctx, { apply: true, signal: opts.signal });
          last = report;
          transientRuns = hasTransientFailure(report) ? transientRuns + 1 : 0;
          opts.onRun?.(report);
        } finally {
          await release?.();
        }
      } catch (err) {
        // runOnce records its own failures; this is a bug or a broken state dir, and the daemon lives on.
        log().error({ err: (err as Error).message, code: 'E_INTERNAL' }, 'run failed unexpectedly; retrying next poll');
      }
      runs += 1;
      if (opts.maxRuns !== undefined && runs >= opts.maxRuns) break;
      ensureSchedule();
      const { intervalMs, jitterMs, schedule } = opts.context().config.source;
      if (schedule) {
        while (!due && !opts.signal.aborted) await sleep(60_000);
        due = false;
      } else await sleep(nextRunDelayMs(last, intervalMs, transientRuns));
      if (jitterMs > 0 && !opts.signal.aborted) await sleep(Math.random() * jitterMs);
    }
  } finally {
    void task?.destroy();
  }
  return runs;
}

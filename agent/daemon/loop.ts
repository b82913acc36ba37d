import cron, { type ScheduledTask } from 'node-cron';
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
  const clock = new Wakeup(opts.signal);
  try {
    while (!opts.signal.aborted) {
      last = await runGuarded(opts);
      if (last) transientRuns = hasTransientFailure(last) ? transientRuns + 1 : 0;
      runs += 1;
      if (opts.maxRuns !== undefined && runs >= opts.maxRuns) break;
      const { intervalMs, jitterMs, schedule } = opts.context().config.source;
      clock.follow(schedule);
      if (schedule) await clock.nextTick();
      else await clock.sleep(nextRunDelayMs(last, intervalMs, transientRuns));
      if (jitterMs > 0 && !opts.signal.aborted) await clock.sleep(Math.random() * jitterMs);
    }
  } finally {
    clock.stop();
  }
  return runs;
}

/** One run under the run lock; whatever it throws is logged and the daemon lives on. */
async function runGuarded(opts: LoopOptions): Promise<RunReport | undefined> {
  const ctx = opts.context();
  try {
    const release = await opts.beforeRun?.();
    try {
      const report = await runOnce(ctx, { apply: true, signal: opts.signal });
      opts.onRun?.(report);
      return report;
    } finally {
      await release?.();
    }
  } catch (err) {
    // runOnce records its own failures; this is a bug or a broken state dir, and the daemon lives on.
    ctx.log
      .child({ component: 'daemon' })
      .error({ err: (err as Error).message, code: 'E_INTERNAL' }, 'run failed unexpectedly; retrying next poll');
    return undefined;
  }
}

/** The loop's waits: an interval, or the next tick of a cron schedule; SIGTERM ends either at once. */
class Wakeup {
  #wake: (() => void) | undefined;
  #due = false;
  #task: ScheduledTask | undefined;
  #schedule: string | undefined;

  constructor(private readonly signal: AbortSignal) {}

  /** Keeps the cron task in step with the config's schedule (a reload may change it). */
  follow(schedule: string | undefined): void {
    if (schedule === this.#schedule) return;
    void this.#task?.destroy();
    this.#task = undefined;
    this.#schedule = schedule;
    if (schedule)
      this.#task = cron.schedule(
        schedule,
        () => {
          this.#due = true;
          this.#wake?.();
        },
        { noOverlap: true, name: 'steward-poll' },
      );
  }

  async nextTick(): Promise<void> {
    while (!this.#due && !this.signal.aborted) await this.sleep(60_000);
    this.#due = false;
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  stop(): void {
    void this.#task?.destroy();
  }
}

import { loadConfig, type AgentConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import { formatError, StewardErrors } from '../errors.js';
import { acquireLock, RUN_LOCK_WAIT_MS } from '../daemon/lock.js';
import { heapTrim } from '../daemon/heap.js';
import { runLoop } from '../daemon/loop.js';
import { Metrics } from '../daemon/metrics.js';
import { Notifier } from '../daemon/notify.js';
import { createContext } from '../reconcile/context.js';
import { configRemote, statusRepo } from '../source/remote.js';
import { reportStopped, STOP_REPORT_MS } from '../daemon/offline.js';
import { flushMemo, type AgentContext, type RunReport } from '../reconcile/run.js';
import { keepUndelivered, resumeUndelivered } from '../reconcile/undelivered.js';
import { args, configFrom, configOption, loggerFor, type ExitCode, type Io } from './common.js';
import { monotonicMs } from '../duration.js';

export const help = 'steward run [--config FILE]      the daemon: poll, reconcile, report, forever';

/** How long a stopping daemon waits for notifications still being delivered. */
const STOP_NOTIFY_MS = 2000;
/** A run still going after this long is stuck (every step has its own deadline): the watchdog pings stop. */
const STUCK_RUN_MS = 30 * 60_000;

/**
 * The daemon. One per host (a lock in stateDir). Tells systemd it is ready once the config is
 * loaded and the lock is held, pings the watchdog from a timer, reports each run's phase as the
 * unit's status line. SIGTERM lets the current step finish, reports the host Offline on the
 * status branch (within a few seconds), then exits 0. SIGHUP reloads the
 * config; an invalid new config is refused and the old one kept.
 */
export async function run(argv: string[], _io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, { ...configOption, 'max-runs': { type: 'string' } });
  const config = await configFrom(values);
  const release = await acquireLock(config.stateDir, 'agent');
  let ctx: AgentContext = await createContext(config, loggerFor(config, false), { signal });
  ctx.memo = {};
  await resumeUndelivered(ctx);
  const log = () => ctx.log.child({ component: 'daemon' });
  const notify = new Notifier(log());
  const metrics = new Metrics(config.host);
  const server = config.metrics ? await metrics.serve(config.metrics.listen) : undefined;
  const heap = heapTrim();
  let runStarted = 0;
  const reload = () =>
    void reloadContext(ctx, signal).then((next) => {
      if (next) ctx = next;
    });
  process.on('SIGHUP', reload);
  if (process.env.STEWARD_FAULT === 'block-on-usr2') process.on('SIGUSR2', blockEventLoop);
  logStart(config, log());
  await notify.ready(`started; polling ${config.source.url}`);
  notify.startWatchdog(() => runStarted === 0 || monotonicMs() - runStarted < STUCK_RUN_MS);
  try {
    const maxRuns = values['max-runs'] ? Number(values['max-runs']) : undefined;
    await runLoop({
      signal,
      context: () => ctx,
      ...(maxRuns ? { maxRuns } : {}),
      beforeRun: async () => {
        runStarted = monotonicMs();
        return acquireLock(ctx.config.stateDir, 'run', RUN_LOCK_WAIT_MS);
      },
      onRun: (report) => {
        runStarted = 0;
        metrics.record(report);
        void notify.status(statusLine(report));
        heap.afterRun();
      },
    });
    await withRunLock(ctx, () => flushMemo(ctx));
    await settleNotices(ctx);
    if (signal.aborted) {
      // Stopped (SIGTERM): say so on the status branch. The running context's Git client was
      // aborted with the signal; a fresh one, bounded by STOP_REPORT_MS, does this last push.
      await reportStopped(
        ctx.config,
        statusRepo(ctx.config, configRemote(ctx.config, ctx.creds, { signal: AbortSignal.timeout(STOP_REPORT_MS) })),
        log(),
      );
    }
  } finally {
    process.off('SIGHUP', reload);
    notify.stopWatchdog();
    await notify.stopping();
    server?.close();
    await release();
  }
  log().info('steward stopped');
  return 0;
}

/** At a stop: what is still being delivered gets a moment; what is left goes out after the next start. */
async function settleNotices(ctx: AgentContext): Promise<void> {
  await ctx.notifier?.drain(STOP_NOTIFY_MS);
  await keepUndelivered(ctx);
}

/** The line systemd shows after `Status:`, e.g. `Converged at 1a2b3c4`. */
function statusLine({ outcome: o }: RunReport): string {
  return `${o.phase} at ${o.appliedRevision?.slice(0, 7) ?? 'nothing'}${o.sourceError ? ` (${o.sourceError.code})` : ''}`;
}

/** SIGHUP: the config file read again; an invalid one is refused and the running context kept. */
async function reloadContext(ctx: AgentContext, signal: AbortSignal): Promise<AgentContext | undefined> {
  const log = ctx.log.child({ component: 'daemon' });
  try {
    const next = await loadConfig(ctx.config.file);
    const fresh = await createContext(next, loggerFor(next, false), { signal });
    // Same stateDir: what the old context kept in memory carries over; another one: it is written.
    if (next.stateDir === ctx.config.stateDir) fresh.memo = ctx.memo ?? {};
    else {
      await withRunLock(ctx, () => flushMemo(ctx));
      fresh.memo = {};
    }
    log.info({ file: next.file }, 'config reloaded');
    return fresh;
  } catch (err) {
    const msg = err instanceof StewardErrors ? err.errors.map(formatError).join('; ') : (err as Error).message;
    log.error({ code: 'E_CONFIG_INVALID' }, `config reload refused, keeping the running config: ${msg}`);
    return undefined;
  }
}

/** Runs `fn` holding the run lock (within a second), or not at all when another run holds it. */
async function withRunLock(ctx: AgentContext, fn: () => Promise<void>): Promise<void> {
  const release = await acquireLock(ctx.config.stateDir, 'run', 1000).catch(() => undefined);
  if (!release) return;
  try {
    await fn();
  } finally {
    await release();
  }
}

/** Fault injection for the watchdog test (STEWARD_FAULT=block-on-usr2): a blocked event loop. */
function blockEventLoop(): void {
  const until = monotonicMs() + 120_000;
  while (monotonicMs() < until) {
    /* spin */
  }
}

function logStart(config: AgentConfig, log: Logger): void {
  log.info(
    {
      host: config.host,
      url: config.source.url,
      branch: config.source.branch,
      paths: config.source.paths,
      metrics: config.metrics?.listen,
    },
    'steward started',
  );
  if (config.source.urlPassword)
    log.warn(
      'source.url carries a password: it is used but never stored or printed; move it to a file named by source.auth.tokenFile',
    );
}

import { join } from 'node:path';
import { monotonicMs } from '../duration.js';
import { toStewardError } from '../errors.js';
import { stat } from '../files.js';
import { writeJsonAtomic } from '../host/fs.js';
import { checkSchema } from '../manifest/schema.js';
import { hostBranch } from '../status/fleet.js';
import { publishStatus } from '../status/publish.js';
import type { HostStatus } from '../types/host-status.js';
import type { AgentContext } from './context.js';
import { errnoOf, persist, type RunRecord, type RunReport } from './record.js';
import { saveState, stateStamp } from './state.js';
import { before, noticesOf } from './notices.js';
import { buildStatus, fingerprint } from './report.js';

/**
 * Step 5: the status document of the run (pure), into the outbox (`stateDir/status.json`),
 * then to the status branch when it changed or a heartbeat is due; then the state is saved.
 * `steward plan` records nothing, not even when it found nothing to plan.
 */
export async function report(ctx: AgentContext, run: RunRecord): Promise<RunReport> {
  run.outcome.durationMs = monotonicMs() - run.startedMs;
  if (!run.apply) return run.report;
  const was = before(run);
  const { doc, due, changed } = recordStatus(ctx, run);
  const push = pushWanted(ctx, run, due);
  await keepOutbox(ctx, run, doc, changed || push === 'push');
  run.report.published = await publish(ctx, run, doc, push);
  await persist(ctx, run);
  // After the state that makes them said once is saved; delivered in the background.
  ctx.notifier?.send(noticesOf(run, doc, was));
  run.log.info(
    {
      phase: run.outcome.phase,
      revision: run.outcome.desiredRevision,
      ms: Math.round(run.outcome.durationMs),
      changed: doc.lastRun.counts.changed,
      failed: doc.lastRun.counts.failed,
    },
    `run finished: ${run.outcome.phase}`,
  );
  return run.report;
}

/** Builds the document, keeps what the next run needs of it, and says whether it is worth a commit. */
function recordStatus(ctx: AgentContext, run: RunRecord): { doc: HostStatus; due: boolean; changed: boolean } {
  const { state } = run;
  const now = run.now();
  const doc = buildStatus(ctx.identity, run.outcome, state, now);
  run.report.status = doc;
  const problems = checkSchema('host-status', doc);
  if (problems.length > 0)
    run.log.error(
      { code: 'E_INTERNAL', problems },
      'the status document does not match schemas/host-status.schema.json (a bug; it is written anyway)',
    );
  state.conditions = doc.conditions;
  state.recentRuns = doc.recentRuns ?? [];
  const fp = fingerprint(doc);
  const prior = state.report;
  const heartbeatDue = !prior?.pushedAt || now.getTime() - Date.parse(prior.pushedAt) >= ctx.config.status.heartbeatMs;
  const due = !prior || prior.fingerprint !== fp || !prior.pushed || heartbeatDue;
  state.report = {
    fingerprint: fp,
    at: doc.updatedAt,
    pushed: prior?.fingerprint === fp && prior.pushed,
    ...(prior?.pushedAt ? { pushedAt: prior.pushedAt } : {}),
  };
  return { doc, due, changed: prior?.fingerprint !== fp };
}

/**
 * The outbox: the newest report is on disk before any push is tried. A report that differs from
 * the one on disk only in its timings, and is not pushed now, is not written: the daemon keeps it
 * in memory (flushMemo writes it at a stop or a reload), `steward once` leaves the file as it was.
 */
async function keepOutbox(ctx: AgentContext, run: RunRecord, doc: HostStatus, write: boolean): Promise<void> {
  const file = join(ctx.config.stateDir, 'status.json');
  if (!write && ctx.memo) {
    ctx.memo.outbox = doc;
    return;
  }
  if (!write && (await exists(file))) return;
  await writeJsonAtomic(file, doc).then(
    () => ctx.memo && delete ctx.memo.outbox,
    (err: unknown) => run.warn(`cannot write ${ctx.config.stateDir}/status.json: ${errnoOf(err)}`),
  );
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Whether this run pushes its report: 'resting' while the Git server is in backoff. */
function pushWanted(ctx: AgentContext, run: RunRecord, due: boolean): 'push' | 'skip' | 'resting' {
  const { state } = run;
  if (!ctx.config.status.enabled || !due || run.signal.aborted) return 'skip';
  // The status branch lives on the same server: while the source is in backoff, the report waits in the outbox.
  const resting = state.source !== undefined && Date.parse(state.source.retryAt) > run.now().getTime();
  return resting ? 'resting' : 'push';
}

/**
 * At a daemon's stop or config reload: what persist and keepOutbox kept in memory is written,
 * unless someone else wrote state.json since (then theirs is newer). The caller holds the run lock.
 */
export async function flushMemo(ctx: AgentContext): Promise<void> {
  const { memo } = ctx;
  const dir = ctx.config.stateDir;
  if (!memo) return;
  try {
    if (memo.stateBehind && memo.state && (await stateStamp(dir)) === memo.state.stamp)
      await saveState(dir, memo.state.state);
    if (memo.outbox) await writeJsonAtomic(join(dir, 'status.json'), memo.outbox);
  } catch (err) {
    ctx.log.warn(`cannot write ${dir}: ${errnoOf(err)}`);
  }
  delete memo.state;
  delete memo.stateBehind;
  delete memo.outbox;
}

async function publish(
  ctx: AgentContext,
  run: RunRecord,
  doc: HostStatus,
  push: 'push' | 'skip' | 'resting',
): Promise<NonNullable<RunReport['published']>> {
  const { config } = ctx;
  const { state } = run;
  if (push === 'skip') return 'skipped';
  if (push === 'resting') {
    run.log.warn(
      { code: 'E_STATUS_PUSH' },
      `status kept in ${config.stateDir}/status.json until the Git server answers again`,
    );
    return 'failed';
  }
  try {
    // Bounded so that contention on the branch delays the next run by one interval at most.
    const res = await publishStatus(ctx.status, hostBranch(config.status.branch, config.host), doc, run.log, {
      own: true,
      signal: run.signal,
      historyLimit: config.status.historyLimit,
      deadlineMs: Math.max(60_000, config.source.intervalMs),
    });
    state.report = { fingerprint: state.report!.fingerprint, at: doc.updatedAt, pushed: true, pushedAt: doc.updatedAt };
    run.log.info(
      { commit: res.commit, attempts: res.attempts, phase: doc.phase },
      `status ${res.outcome} to ${hostBranch(config.status.branch, config.host)}`,
    );
    return res.outcome;
  } catch (err) {
    const e = toStewardError(err, 'E_STATUS_PUSH');
    run.log.error(
      { code: e.code },
      `status not published (kept in ${config.stateDir}/status.json, retried next run): ${e.message}`,
    );
    return 'failed';
  }
}

import { join } from 'node:path';
import type { AgentConfig, Credentials } from '../config/load.js';
import { StewardError, toStewardError } from '../errors.js';
import { writeJsonAtomic } from '../host/fs.js';
import type { Logger } from '../log.js';
import { buildBundle, type Bundle } from '../manifest/bundle.js';
import { checkSchema } from '../manifest/schema.js';
import type { GitRepo } from '../source/repo.js';
import { sync } from './sync.js';
import { readManifests, readRepoFile } from '../source/tree.js';
import { buildStatus, fingerprint, phaseOf, type HostIdentity, type RunOutcome } from './report.js';
import { publishStatus } from '../status/publish.js';
import type { HostStatus } from '../types/host-status.js';
import type { ResourceResult } from './apply.js';
import { enforce, planBundle } from './enforce.js';
import { ROLLBACK_CODES } from './health.js';
import type { Drivers, Plan } from './plan.js';
import { resolveBundle } from './resolve.js';
import { appendJournal, loadState, saveState, type AgentState, type JournalRecord } from './state.js';

/** Everything a run needs, built once per process (and again on a config reload). */
export interface AgentContext {
  config: AgentConfig;
  creds: Credentials;
  log: Logger;
  source: GitRepo;
  status: GitRepo;
  drivers: Drivers;
  identity: HostIdentity;
  /** The revision being applied, for labels written during apply. */
  revision: { current: string };
}

export interface RunReport {
  outcome: RunOutcome;
  plan?: Plan;
  status?: HostStatus;
  published?: 'pushed' | 'unchanged' | 'skipped' | 'failed';
}

const short = (rev: string | null | undefined) => (rev ? rev.slice(0, 7) : 'none');

/**
 * One reconcile run, as named steps:
 *   1. sync     ask Git whether the branch moved; fetch only then (or use the last fetched commit)
 *   2. choose   the head's bundle, unless it is invalid, refused (history rewritten) or failed
 *               before: then the last good bundle is enforced instead
 *   3. enforce  observe, plan, apply in order, wait for the health of what changed
 *   4. judge    a head whose changes are unhealthy is rolled back to the last good bundle
 *               (rollback: auto) and remembered as failed until the branch moves
 *   5. report   state to stateDir, status to the status branch when it changed or is due
 * Each failing step records one reason; nothing here throws for bad input or an unreachable
 * server. With `apply: false` it stops after planning and changes nothing (`steward plan`).
 */
export async function runOnce(
  ctx: AgentContext,
  opts: { apply: boolean; signal: AbortSignal; now?: () => Date },
): Promise<RunReport> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const t0 = performance.now();
  const log = ctx.log.child({ component: 'reconcile' });
  const { config } = ctx;
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    log.warn(msg);
  };
  const state = await loadState(config.stateDir, warn);
  const failedAtStart = new Set(state.failedRevisions);

  // 1. sync
  const { revision: head, error: sourceError } = await sync(
    ctx.source,
    config.source.branch,
    state,
    config.source.intervalMs,
    now,
    log,
  );
  const outcome: RunOutcome = {
    startedAt,
    durationMs: 0,
    desiredRevision: head ?? null,
    appliedRevision: state.appliedRevision,
    lastGoodRevision: state.lastGoodRevision,
    phase: 'Failed',
    bundleErrors: [],
    results: new Map(),
    notes: warnings,
    ...(sourceError ? { sourceError } : {}),
  };
  const report: RunReport = { outcome };
  if (!head) {
    outcome.sourceError ??= new StewardError('E_GIT_NO_REVISION', 'no revision has been fetched yet', {
      retry: 'transient',
    });
    return finish();
  }

  // 2. choose
  let target: Bundle | undefined;
  let reason: 'head' | 'invalid' | 'failed' | 'refused' = 'head';
  if (failedAtStart.has(head)) {
    reason = 'failed';
    warn(
      `revision ${short(head)} failed its health checks and was rolled back; it is not tried again until the branch moves`,
    );
  } else if (await refusedHistory(head)) {
    reason = 'refused';
  } else {
    const loaded = await loadBundle(head);
    outcome.bundleErrors = loaded.errors;
    if (loaded.bundle) target = loaded.bundle;
    else {
      reason = 'invalid';
      for (const e of loaded.errors) log.error({ code: e.code, ...e.detail }, e.message);
    }
  }
  if (!target && state.lastGoodRevision && state.lastGoodRevision !== head) {
    const good = await loadBundle(state.lastGoodRevision);
    if (good.bundle) {
      target = good.bundle;
      warn(`enforcing the last good revision ${short(state.lastGoodRevision)} meanwhile`);
    } else
      warn(
        `the last good revision ${short(state.lastGoodRevision)} cannot be loaded: ${good.errors[0]?.message ?? 'unknown error'}`,
      );
  }
  const settle = (results: Map<string, ResourceResult>) =>
    reason === 'invalid'
      ? 'Invalid'
      : reason === 'failed'
        ? 'Degraded'
        : reason === 'refused'
          ? 'Failed'
          : phaseOf(results, false);
  if (!target) {
    outcome.phase = settle(new Map());
    return finish();
  }
  if (!opts.apply) {
    ctx.revision.current = target.revision;
    report.plan = await planBundle(target, state, {
      drivers: ctx.drivers,
      allowEmptyPrune: config.prune.allowEmpty,
      log,
      signal: opts.signal,
    });
    outcome.notes.push(...report.plan.notes);
    outcome.phase =
      reason !== 'head' ? settle(new Map()) : report.plan.changes.length === 0 ? 'Converged' : 'Progressing';
    return finish(false);
  }

  // 3. enforce
  const applied = await apply(target);
  outcome.results = applied.results;
  outcome.phase = settle(applied.results);

  // 4. judge
  if (reason === 'head') {
    const broken = [...applied.results.values()].filter(
      (r) => r.action !== 'none' && r.status === 'Failed' && r.error && ROLLBACK_CODES.has(r.error.code),
    );
    const converged = outcome.phase === 'Converged';
    if (converged) state.lastGoodRevision = head;
    if (broken.length > 0 && config.rollback === 'auto') {
      const why = broken.map((r) => `${r.id}: ${r.message}`).join('; ');
      if (!state.lastGoodRevision || state.lastGoodRevision === head)
        warn(`revision ${short(head)} is unhealthy and there is no last good revision to roll back to`);
      else {
        const good = await loadBundle(state.lastGoodRevision);
        if (!good.bundle)
          warn(`cannot roll back: the last good revision ${short(state.lastGoodRevision)} cannot be loaded`);
        else {
          log.error(
            { from: head, to: state.lastGoodRevision, code: 'E_REVISION_FAILED' },
            `rolling back ${short(head)} to ${short(state.lastGoodRevision)}: ${why}`,
          );
          state.failedRevisions = [...state.failedRevisions.filter((r) => r !== head), head].slice(-20);
          state.rollback = { from: head, to: state.lastGoodRevision, at: now().toISOString(), reason: why };
          const back = await apply(good.bundle);
          // The failed revision's results stay visible; the rollback's changes are reported on top.
          for (const [id, r] of back.results)
            if (r.action !== 'none' || !outcome.results.has(id))
              outcome.results.set(id, { ...r, message: `rollback: ${r.message}` });
          outcome.phase = 'Degraded';
          outcome.rollback = state.rollback;
        }
      }
    }
  }
  outcome.appliedRevision = state.appliedRevision;
  outcome.lastGoodRevision = state.lastGoodRevision;
  return finish();

  /** Loads and validates the bundle at a commit (manifests and the files they source). */
  async function loadBundle(revision: string): Promise<{ bundle?: Bundle; errors: StewardError[] }> {
    try {
      const read = await readManifests(ctx.source.objects, revision, config.source.paths);
      if (read.missing.length > 0 && revision === head)
        outcome.notes.push(`not at ${short(revision)}: ${read.missing.join(', ')}`);
      const built = buildBundle(revision, read.files);
      const errors = [...read.errors, ...built.errors];
      if (!built.bundle || errors.length > 0) return { errors };
      const resolved = await resolveBundle(built.bundle, config, (path) =>
        readRepoFile(ctx.source.objects, revision, path),
      );
      return resolved.length > 0 ? { errors: resolved } : { bundle: built.bundle, errors: [] };
    } catch (err) {
      return { errors: [toStewardError(err, 'E_GIT_NO_REVISION', `cannot read revision ${short(revision)}`)] };
    }
  }

  /** A head that does not descend from the applied revision is refused (once checked, remembered). */
  async function refusedHistory(revision: string): Promise<boolean> {
    const appliedRev = state.appliedRevision;
    if (!appliedRev || revision === appliedRev || config.source.allowHistoryRewrite) return false;
    if (state.refusedRevision !== revision) {
      let related: boolean | 'unknown';
      try {
        related = await ctx.source.isDescendant(config.source.branch, revision, appliedRev);
      } catch (err) {
        warn(`cannot check that ${short(revision)} descends from ${short(appliedRev)}: ${(err as Error).message}`);
        return false;
      }
      if (related === 'unknown')
        warn(`${short(revision)} is more than 1000 commits past ${short(appliedRev)}; its ancestry was not verified`);
      if (related !== false) return false;
      state.refusedRevision = revision;
    }
    outcome.sourceError = new StewardError(
      'E_GIT_HISTORY',
      `the branch was rewritten: ${short(revision)} does not descend from the applied revision ${short(appliedRev)}; refused (set source.allowHistoryRewrite: true to accept it)`,
      { retry: 'stalled' },
    );
    log.error({ code: 'E_GIT_HISTORY', head: revision, applied: appliedRev }, outcome.sourceError.message);
    return true;
  }

  async function apply(bundle: Bundle) {
    ctx.revision.current = bundle.revision;
    const result = await enforce(bundle, state, {
      drivers: ctx.drivers,
      allowEmptyPrune: config.prune.allowEmpty,
      healthTimeoutMs: config.health.timeoutMs,
      log,
      signal: opts.signal,
      journal: (record) => journal(record),
    });
    outcome.notes.push(...result.plan.notes);
    state.appliedRevision = bundle.revision;
    report.plan = result.plan;
    return result;
  }

  /** Records one inventory change; a full disk is a warning (the run's final save retries it). */
  async function journal(record: JournalRecord): Promise<void> {
    try {
      await appendJournal(config.stateDir, record);
    } catch (err) {
      const msg = `cannot write ${config.stateDir}/state.journal: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      if (!warnings.includes(msg)) warn(msg);
    }
  }

  /** Saves the state; a full disk is a warning and a retry next run, never a crash. */
  async function persist(): Promise<void> {
    try {
      await saveState(config.stateDir, state);
    } catch (err) {
      const msg = `cannot write ${config.stateDir}/state.json: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      if (!warnings.includes(msg)) warn(msg);
    }
  }

  async function finish(record = true): Promise<RunReport> {
    outcome.durationMs = performance.now() - t0;
    if (!record) return report;
    const doc = buildStatus(ctx.identity, outcome, state, now());
    report.status = doc;
    const problems = checkSchema('host-status', doc);
    if (problems.length > 0)
      log.error(
        { code: 'E_INTERNAL', problems },
        'the status document does not match schemas/host-status.schema.json (a bug; it is written anyway)',
      );
    state.conditions = doc.conditions;
    state.recentRuns = doc.recentRuns ?? [];
    const fp = fingerprint(doc);
    const heartbeatDue =
      !state.report?.pushedAt || now().getTime() - Date.parse(state.report.pushedAt) >= config.status.heartbeatMs;
    const due = !state.report || state.report.fingerprint !== fp || !state.report.pushed || heartbeatDue;
    state.report = {
      fingerprint: fp,
      at: doc.updatedAt,
      pushed: state.report?.fingerprint === fp && state.report.pushed,
      ...(state.report?.pushedAt ? { pushedAt: state.report.pushedAt } : {}),
    };
    // The outbox: the newest report is on disk before any push is tried.
    await writeJsonAtomic(join(config.stateDir, 'status.json'), doc).catch((err: NodeJS.ErrnoException) =>
      warn(`cannot write ${config.stateDir}/status.json: ${err.code ?? err.message}`),
    );
    // The status branch lives on the same server: while the source is in backoff, the report waits in the outbox.
    const serverResting = state.source !== undefined && Date.parse(state.source.retryAt) > now().getTime();
    if (!config.status.enabled || !due || opts.signal.aborted || serverResting) {
      const held = config.status.enabled && serverResting && due;
      report.published = held ? 'failed' : 'skipped';
      if (held)
        log.warn(
          { code: 'E_STATUS_PUSH' },
          `status kept in ${config.stateDir}/status.json until the Git server answers again`,
        );
    } else {
      try {
        // Bounded so that contention on the branch delays the next run by one interval at most.
        const res = await publishStatus(ctx.status, config.status.branch, doc, log, {
          signal: opts.signal,
          historyLimit: config.status.historyLimit,
          deadlineMs: Math.max(60_000, config.source.intervalMs),
        });
        state.report = { fingerprint: fp, at: doc.updatedAt, pushed: true, pushedAt: doc.updatedAt };
        report.published = res.outcome;
        log.info(
          { commit: res.commit, attempts: res.attempts, phase: doc.phase },
          `status ${res.outcome} to ${config.status.branch}`,
        );
      } catch (err) {
        const e = toStewardError(err, 'E_STATUS_PUSH');
        report.published = 'failed';
        log.error(
          { code: e.code },
          `status not published (kept in ${config.stateDir}/status.json, retried next run): ${e.message}`,
        );
      }
    }
    await persist();
    log.info(
      {
        phase: outcome.phase,
        revision: outcome.desiredRevision,
        ms: Math.round(outcome.durationMs),
        changed: doc.lastRun.counts.changed,
        failed: doc.lastRun.counts.failed,
      },
      `run finished: ${outcome.phase}`,
    );
    return report;
  }
}

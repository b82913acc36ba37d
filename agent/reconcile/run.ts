import { join } from 'node:path';
import type { AgentConfig, Credentials } from '../config/load.js';
import { StewardError, toStewardError } from '../errors.js';
import { writeJsonAtomic } from '../host/fs.js';
import type { Logger } from '../log.js';
import { buildBundle, type Bundle, type Desired, type Kind } from '../manifest/bundle.js';
import type { ResourceDriver } from '../resources/driver.js';
import { MAX_PACKS, type GitRepo } from '../source/repo.js';
import { readManifests, readRepoFile } from '../source/tree.js';
import { resolveBundle } from './resolve.js';
import { buildStatus, fingerprint, phaseOf, type HostIdentity, type RunOutcome } from '../status/report.js';
import { publishStatus } from '../status/publish.js';
import type { HostStatus } from '../types/host-status.js';
import { applyPlan, type ResourceResult } from './apply.js';
import { makePlan, type Drivers, type Observations, type Plan } from './plan.js';
import { loadState, saveState, type AgentState } from './state.js';

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

/**
 * One reconcile run, as named steps: sync the source, load the bundle, observe, plan, apply,
 * record, report. Each step that fails records its reason and the run goes on as far as it
 * safely can; nothing here throws for bad input or an unreachable server.
 * With `apply: false` it stops after planning and changes nothing on the host (`steward plan`).
 */
export async function runOnce(ctx: AgentContext, opts: { apply: boolean; signal: AbortSignal; now?: () => Date }): Promise<RunReport> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const t0 = performance.now();
  const log = ctx.log.child({ component: 'reconcile' });
  const state = await loadState(ctx.config.stateDir);

  // 1. source
  const { revision, error: sourceError } = await sync(ctx, state, log);
  const outcome: RunOutcome = {
    startedAt,
    durationMs: 0,
    desiredRevision: revision ?? null,
    appliedRevision: state.appliedRevision,
    lastGoodRevision: state.lastGoodRevision,
    phase: 'Failed',
    bundleErrors: [],
    results: new Map(),
    notes: [],
    ...(sourceError ? { sourceError } : {}),
  };
  const report: RunReport = { outcome };
  if (!revision) {
    outcome.sourceError ??= new StewardError('E_GIT_NO_REVISION', 'no revision has been fetched yet', { retry: 'transient' });
    return finish();
  }

  // 2. load
  const cache = {};
  const read = await readManifests(ctx.source.gitdir, revision, ctx.config.source.paths, cache);
  const built = buildBundle(revision, read.files);
  outcome.bundleErrors = [...read.errors, ...built.errors];
  if (read.missing.length > 0) outcome.notes.push(`not at ${revision.slice(0, 7)}: ${read.missing.join(', ')}`);
  if (outcome.bundleErrors.length > 0 || !built.bundle) {
    for (const e of outcome.bundleErrors) log.error({ code: e.code, ...e.detail }, e.message);
    outcome.phase = 'Invalid';
    return finish();
  }
  const bundle = built.bundle;
  outcome.bundleErrors = await resolveBundle(bundle, ctx.config, (path) => readRepoFile(ctx.source.gitdir, revision, path, cache));
  if (outcome.bundleErrors.length > 0) {
    for (const e of outcome.bundleErrors) log.error({ code: e.code, ...e.detail }, e.message);
    outcome.phase = 'Invalid';
    return finish();
  }

  // 3. observe and plan
  ctx.revision.current = revision;
  const { observations, unobservable } = await observe(ctx, bundle, state, opts.signal, log);
  const plan = makePlan(bundle, observations, state.inventory, ctx.drivers, { allowEmptyPrune: ctx.config.prune.allowEmpty, unobservable });
  report.plan = plan;
  outcome.notes.push(...plan.notes);
  for (const n of plan.notes) log.warn({ revision }, n);
  if (!opts.apply) {
    outcome.phase = plan.changes.length === 0 ? 'Converged' : 'Progressing';
    return finish(false);
  }

  // 4. apply
  outcome.results = await applyPlan(plan, ctx.drivers, log, opts.signal);
  outcome.phase = phaseOf(outcome.results, false);

  // 5. record
  recordInventory(state, bundle, outcome.results, ctx.drivers);
  state.appliedRevision = revision;
  if (outcome.phase === 'Converged') state.lastGoodRevision = revision;
  outcome.appliedRevision = state.appliedRevision;
  outcome.lastGoodRevision = state.lastGoodRevision;
  return finish();

  async function finish(record = true): Promise<RunReport> {
    outcome.durationMs = performance.now() - t0;
    if (!record) return report;
    const doc = buildStatus(ctx.identity, outcome, state, now());
    report.status = doc;
    state.conditions = doc.conditions;
    state.recentRuns = doc.recentRuns ?? [];
    const fp = fingerprint(doc);
    const heartbeatDue = !state.report?.pushedAt || now().getTime() - Date.parse(state.report.pushedAt) >= ctx.config.status.heartbeatMs;
    const due = !state.report || state.report.fingerprint !== fp || !state.report.pushed || heartbeatDue;
    state.report = { fingerprint: fp, at: doc.updatedAt, pushed: state.report?.fingerprint === fp && state.report.pushed, ...(state.report?.pushedAt ? { pushedAt: state.report.pushedAt } : {}) };
    // The outbox: the newest report is on disk before any push is tried.
    await writeJsonAtomic(join(ctx.config.stateDir, 'status.json'), doc);
    if (!ctx.config.status.enabled || !due || opts.signal.aborted) {
      report.published = 'skipped';
    } else {
      try {
        const res = await publishStatus(ctx.status, ctx.config.status.branch, doc, log, { signal: opts.signal });
        state.report = { fingerprint: fp, at: doc.updatedAt, pushed: true, pushedAt: doc.updatedAt };
        report.published = res.outcome;
        log.info({ commit: res.commit, attempts: res.attempts, phase: doc.phase }, `status ${res.outcome} to ${ctx.config.status.branch}`);
      } catch (err) {
        const e = toStewardError(err, 'E_STATUS_PUSH');
        report.published = 'failed';
        log.error({ code: e.code }, `status not published (kept in ${ctx.config.stateDir}/status.json, retried next run): ${e.message}`);
      }
    }
    await saveState(ctx.config.stateDir, state);
    log.info({ phase: outcome.phase, revision: outcome.desiredRevision, ms: Math.round(outcome.durationMs), changed: doc.lastRun.counts.changed, failed: doc.lastRun.counts.failed }, `run finished: ${outcome.phase}`);
    return report;
  }
}

/** Asks the server whether the branch moved; fetches only when it did. Never throws. */
async function sync(ctx: AgentContext, state: AgentState, log: Logger): Promise<{ revision?: string; error?: StewardError }> {
  const { branch } = ctx.config.source;
  const src = ctx.source;
  await src.init();
  const local = await src.localHead(branch);
  try {
    const remote = await src.remoteHead(branch);
    if (!remote) throw new StewardError('E_GIT_NO_BRANCH', `branch "${branch}" does not exist on the server`, { retry: 'transient' });
    if (remote === local) return { revision: local };
    const revision = await src.fetch(branch);
    log.info({ revision, previous: local }, 'fetched a new revision');
    if ((await src.packCount()) > MAX_PACKS) {
      const keep = [revision, state.appliedRevision, state.lastGoodRevision].filter((x): x is string => Boolean(x));
      const { before, after } = await src.compact(keep);
      log.info({ before, after }, 'compacted the source object store');
    }
    return { revision };
  } catch (err) {
    const error = toStewardError(err, 'E_GIT_FETCH');
    log.warn({ code: error.code, revision: local }, `${error.message}; ${local ? `using the last fetched revision ${local.slice(0, 7)}` : 'nothing fetched yet'}`);
    return { ...(local ? { revision: local } : {}), error };
  }
}

/** Observes each kind on its own: an engine that is down fails the containers, not the files. */
async function observe(ctx: AgentContext, bundle: Bundle, state: AgentState, signal: AbortSignal, log: Logger): Promise<{ observations: Observations; unobservable: Partial<Record<Kind, StewardError>> }> {
  const observations: Observations = {};
  const unobservable: Partial<Record<Kind, StewardError>> = {};
  for (const [kind, driver] of Object.entries(ctx.drivers) as Array<[Kind, ResourceDriver<Desired, unknown>]>) {
    const owned = new Map(Object.entries(state.inventory).filter(([, e]) => e.kind === kind));
    try {
      observations[kind] = await driver.observe(bundle.resources.filter((r) => r.kind === kind), owned, signal);
    } catch (err) {
      const e = toStewardError(err, 'E_INTERNAL', `cannot observe ${kind} resources`);
      log.error({ code: e.code, kind }, e.message);
      unobservable[kind] = e;
    }
  }
  return { observations, unobservable };
}

/** Ready resources are owned at their new hash; pruned ones leave; failed ones keep what they had. */
function recordInventory(state: AgentState, bundle: Bundle, results: Map<string, ResourceResult>, drivers: Drivers): void {
  for (const d of bundle.resources) {
    const r = results.get(d.id);
    const driver = drivers[d.kind] as ResourceDriver<Desired, unknown> | undefined;
    if (r?.status !== 'Ready' || !driver) continue;
    const prior = state.inventory[d.id];
    const keep = prior ? { path: prior.path, backup: prior.backup, unit: prior.unit, original: prior.original } : {};
    const merged = Object.fromEntries(Object.entries({ ...keep, ...(r.owned ?? {}) }).filter(([, v]) => v !== undefined));
    state.inventory[d.id] = { kind: d.kind, hash: driver.hash(d), revision: bundle.revision, ...merged };
  }
  for (const r of results.values()) if (r.status === 'Pruned') delete state.inventory[r.id];
}

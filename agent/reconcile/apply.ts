import { monotonicMs } from '../duration.js';
import { StewardError, toStewardError } from '../errors.js';
import type { Logger } from '../log.js';
import { driverOf, type Action, type Change, type Owned } from '../resources/driver.js';
import { KIND_RULES } from '../manifest/kinds.js';
import { prerequisites, type Drivers, type Plan } from './plan.js';

export type ResourceStatus = 'Ready' | 'Failed' | 'Skipped' | 'Pruned';

export interface ResourceResult {
  id: string;
  action: Action | 'none';
  status: ResourceStatus;
  message: string;
  drift: boolean;
  error?: StewardError;
  /** What the driver said the inventory must remember after this change. */
  owned?: Owned;
  health?: 'Healthy' | 'Unhealthy' | 'Unknown';
}

/** Changes of a concurrent kind (containers) in flight at once. */
export const APPLY_PARALLEL = 8;

/**
 * Applies a plan in dependency order. Changes of a concurrent kind (containers) that do not
 * depend on each other run at the same time, at most APPLY_PARALLEL; every other change (files,
 * services) runs alone, after everything before it in the plan; prunes start once every desired
 * change is done. A failing change fails only its resource; what depends on it is skipped with
 * the reason; the rest still applies. `afterChange` runs for each change made, before anything
 * that depends on it starts. When `signal` aborts (SIGTERM), the changes under way finish and
 * the rest are skipped.
 */
export async function applyPlan(
  plan: Plan,
  drivers: Drivers,
  log: Logger,
  signal: AbortSignal,
  afterChange: (r: ResourceResult) => Promise<void> = async () => undefined,
): Promise<Map<string, ResourceResult>> {
  const results = new Map<string, ResourceResult>();
  for (const id of plan.unchanged)
    results.set(id, { id, action: 'none', status: 'Ready', message: 'up to date', drift: false });
  const changed = new Set<string>();
  const slot = limiter(APPLY_PARALLEL);
  const one = async (change: Change) => applyOne(change, { plan, drivers, log, signal, afterChange, results, changed });
  const finished = new Map<string, Promise<void>>();
  let barrier: Promise<unknown> = Promise.resolve();
  let since: Array<Promise<void>> = []; // concurrent changes started after the barrier
  let pruning = false;
  for (const change of plan.changes) {
    if (!pruning && !change.desired) {
      pruning = true;
      barrier = Promise.all([barrier, ...since]);
      since = [];
    }
    const concurrent = KIND_RULES[change.kind]?.concurrent === true;
    const first = concurrent
      ? [barrier, ...(change.desired ? prerequisites(change.desired) : []).map((id) => finished.get(id))]
      : [barrier, ...since];
    const done = Promise.all(first).then(() => (concurrent ? slot(() => one(change)) : one(change)));
    finished.set(change.id, done);
    if (concurrent) since.push(done);
    else [barrier, since] = [done, []];
  }
  await Promise.all([barrier, ...since]);
  return results;
}

interface ApplyScope {
  plan: Plan;
  drivers: Drivers;
  log: Logger;
  signal: AbortSignal;
  afterChange: (r: ResourceResult) => Promise<void>;
  results: Map<string, ResourceResult>;
  changed: Set<string>;
}

/** Makes one change (or holds it back) and records its result. Never throws. */
async function applyOne(change: Change, scope: ApplyScope): Promise<void> {
  const { plan, drivers, signal, results, changed } = scope;
  const rlog = scope.log.child({ resource: change.id });
  const result = (status: ResourceStatus, message: string, error?: StewardError, owned?: Owned): ResourceResult => ({
    id: change.id,
    action: change.action,
    status,
    message,
    drift: change.drift,
    ...(error ? { error } : {}),
    ...(owned ? { owned } : {}),
  });
  const held = holdBack(change, results, changed, signal, rlog);
  if (held) {
    results.set(change.id, result(held.status, held.message, held.error));
    return;
  }
  const reason = change.reasons.join('; ');
  const started = monotonicMs();
  try {
    const owned = await driverOf(drivers, change.kind)!.apply(change, { revision: plan.revision, signal });
    changed.add(change.id);
    rlog.info(
      { action: change.action, reason, drift: change.drift, ms: Math.round(monotonicMs() - started) },
      `${change.action} ${change.id}: ${reason}`,
    );
    const done = change.action === 'delete' && !change.desired ? 'Pruned' : 'Ready';
    results.set(change.id, result(done, `${change.action}: ${reason}`, undefined, owned));
  } catch (err) {
    const e = toStewardError(err, 'E_INTERNAL', undefined, { resource: change.id });
    rlog.error(
      { action: change.action, reason, code: e.code, err: e.message },
      `${change.action} ${change.id} failed: ${e.message}`,
    );
    results.set(change.id, result('Failed', e.message, e));
    return;
  }
  await scope.afterChange(results.get(change.id)!).catch((err: unknown) => {
    rlog.error({ err: (err as Error).message }, `cannot record ${change.id}: ${(err as Error).message}`);
  });
}

/** Runs at most `n` tasks at once; the others wait their turn in order. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (running >= n) await new Promise<void>((r) => waiting.push(r));
    else running += 1;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running -= 1;
    }
  };
}

/**
 * Why a change is not made in this run, if it is not: the agent is stopping, the change is
 * blocked, what it depends on failed, or it is a restart whose trigger did not change after all.
 */
function holdBack(
  change: Change,
  results: ReadonlyMap<string, ResourceResult>,
  changed: ReadonlySet<string>,
  signal: AbortSignal,
  rlog: Logger,
): { status: ResourceStatus; message: string; error?: StewardError } | undefined {
  const failed = (id: string) => {
    const r = results.get(id);
    return r !== undefined && (r.status === 'Failed' || r.status === 'Skipped');
  };
  if (signal.aborted)
    return {
      status: 'Skipped',
      message: 'agent is stopping; applied next run',
      error: new StewardError('E_DEPENDENCY_FAILED', 'agent is stopping', { resource: change.id }),
    };
  const reason = change.reasons.join('; ');
  if (change.blocked) {
    rlog.error(
      { action: change.action, reason, code: change.blocked.code, err: change.blocked.message },
      `${change.action} blocked: ${change.blocked.message}`,
    );
    return { status: 'Failed', message: change.blocked.message, error: change.blocked };
  }
  const blockers = change.desired ? prerequisites(change.desired).filter(failed) : [];
  if (blockers.length > 0) {
    const message = `skipped: ${blockers.join(', ')} failed`;
    rlog.warn({ action: change.action, reason: message }, message);
    return {
      status: 'Skipped',
      message,
      error: new StewardError('E_DEPENDENCY_FAILED', message, { resource: change.id }),
    };
  }
  if (
    change.action === 'restart' &&
    change.desired &&
    !(change.desired.spec.restartOn ?? []).some((t) => changed.has(t))
  )
    return { status: 'Ready', message: 'restart not needed: no trigger changed' };
  return undefined;
}

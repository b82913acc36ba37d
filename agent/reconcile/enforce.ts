import { toStewardError, type StewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Bundle, Desired, Kind } from '../manifest/bundle.js';
import { driverOf } from '../resources/driver.js';
import { ownedOf, record } from './inventory.js';
import { applyPlan, type ResourceResult } from './apply.js';
import { checkHealth } from './health.js';
import { makePlan, type Drivers, type Observations, type Plan } from './plan.js';
import type { AgentContext } from './context.js';
import { journal, type RunRecord } from './record.js';
import type { AgentState, JournalRecord } from './state.js';

export interface EnforceOptions {
  drivers: Drivers;
  allowEmptyPrune: boolean;
  healthTimeoutMs: number;
  log: Logger;
  signal: AbortSignal;
  /**
   * Persists inventory changes; called after every change (changes that finish while a write is
   * under way are written together by the next), so a crash loses at most the changes under way.
   */
  journal: (records: readonly JournalRecord[]) => Promise<void>;
}

/** Observes the host and plans `bundle` onto it. Changes nothing. */
export async function planBundle(
  bundle: Bundle,
  state: AgentState,
  opts: Pick<EnforceOptions, 'drivers' | 'allowEmptyPrune' | 'log' | 'signal'>,
): Promise<Plan> {
  const observations: Observations = {};
  const unobservable: Partial<Record<Kind, StewardError>> = {};
  // Each kind on its own: an engine that is down fails the containers, not the files.
  for (const kind of Object.keys(opts.drivers) as Kind[]) {
    const driver = driverOf(opts.drivers, kind)!;
    const owned = ownedOf(state.inventory, kind);
    try {
      observations[kind] = await driver.observe(
        bundle.resources.filter((r) => r.kind === kind),
        owned,
        opts.signal,
      );
    } catch (err) {
      const e = toStewardError(err, 'E_INTERNAL', `cannot observe ${kind} resources`);
      opts.log.error({ code: e.code, kind }, e.message);
      unobservable[kind] = e;
    }
  }
  const plan = makePlan(bundle, observations, state.inventory, opts.drivers, {
    allowEmptyPrune: opts.allowEmptyPrune,
    unobservable,
  });
  for (const n of plan.notes) opts.log.warn({ revision: bundle.revision }, n);
  return plan;
}

/**
 * Makes the host match one bundle: observe, plan, apply in order, wait for the health of what
 * changed, and keep the inventory current after every change (write-ahead of the next one).
 */
export async function enforce(
  bundle: Bundle,
  state: AgentState,
  opts: EnforceOptions,
): Promise<{ plan: Plan; results: Map<string, ResourceResult> }> {
  const plan = await planBundle(bundle, state, opts);
  const byId = new Map(bundle.resources.map((d) => [d.id, d]));
  const write = coalesce(opts.journal);
  const results = await applyPlan(plan, opts.drivers, opts.log, opts.signal, async (result) => {
    const before = state.inventory[result.id];
    remember(state, byId.get(result.id), result, opts.drivers, bundle.revision);
    const after = state.inventory[result.id];
    if (after !== before) await write({ id: result.id, ...(after ? { entry: after } : {}) });
  });
  for (const id of plan.unchanged) remember(state, byId.get(id), results.get(id)!, opts.drivers, bundle.revision);
  await checkHealth(bundle, results, opts.drivers, opts.healthTimeoutMs, opts.log, opts.signal);
  return { plan, results };
}

/**
 * One write at a time: items that arrive while a write is under way go together into the next
 * one, and each caller's promise settles when the write holding its item is done.
 */
export function coalesce<T>(write: (items: T[]) => Promise<void>): (item: T) => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  let waiting: { items: T[]; done: Promise<void> } | undefined;
  return (item) => {
    if (waiting) {
      waiting.items.push(item);
      return waiting.done;
    }
    const items = [item];
    const done = running.then(() => {
      waiting = undefined;
      return write(items);
    });
    waiting = { items, done };
    running = done.catch(() => undefined);
    return done;
  };
}

/** Keeps the inventory current with one result (see inventory.ts for what is owned when). */
function remember(
  state: AgentState,
  d: Desired | undefined,
  r: ResourceResult,
  drivers: Drivers,
  revision: string,
): void {
  const driver = d ? driverOf(drivers, d.kind) : undefined;
  const applied =
    d && driver ? { desired: d, hash: driver.hash(d), claims: driver.claims?.(d) ?? {}, revision } : undefined;
  const entry = record(state.inventory[r.id], r, applied);
  if (entry) state.inventory[r.id] = entry;
  else delete state.inventory[r.id];
}

/** Step 3: makes the host match `bundle`, journalling each inventory change, and records what it did. */
export async function enforceStep(
  ctx: AgentContext,
  run: RunRecord,
  bundle: Bundle,
): Promise<Map<string, ResourceResult>> {
  const result = await enforce(bundle, run.state, {
    drivers: ctx.drivers,
    allowEmptyPrune: ctx.config.prune.allowEmpty,
    healthTimeoutMs: ctx.config.health.timeoutMs,
    log: run.log,
    signal: run.signal,
    journal: (record) => journal(ctx, run, record),
  });
  run.outcome.notes.push(...result.plan.notes);
  run.state.appliedRevision = bundle.revision;
  run.report.plan = result.plan;
  return result.results;
}

/** `steward plan`: observes and plans `bundle`, changes nothing. */
export async function planStep(ctx: AgentContext, run: RunRecord, bundle: Bundle): Promise<Plan> {
  const plan = await planBundle(bundle, run.state, {
    drivers: ctx.drivers,
    allowEmptyPrune: ctx.config.prune.allowEmpty,
    log: run.log,
    signal: run.signal,
  });
  run.outcome.notes.push(...plan.notes);
  run.report.plan = plan;
  return plan;
}

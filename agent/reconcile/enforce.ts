import { toStewardError, type StewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Bundle, Desired, Kind } from '../manifest/bundle.js';
import type { ResourceDriver } from '../resources/driver.js';
import { applyPlan, type ResourceResult } from './apply.js';
import { checkHealth } from './health.js';
import { makePlan, type Drivers, type Observations, type Plan } from './plan.js';
import type { AgentState, JournalRecord } from './state.js';

export interface EnforceOptions {
  drivers: Drivers;
  allowEmptyPrune: boolean;
  healthTimeoutMs: number;
  log: Logger;
  signal: AbortSignal;
  /** Persists one inventory change; called after every change, so a crash loses at most the change under way. */
  journal: (record: JournalRecord) => Promise<void>;
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
  for (const [kind, driver] of Object.entries(opts.drivers) as Array<[Kind, ResourceDriver<Desired, unknown>]>) {
    const owned = new Map(Object.entries(state.inventory).filter(([, e]) => e.kind === kind));
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
  const results = await applyPlan(plan, opts.drivers, opts.log, opts.signal, async (result) => {
    const before = state.inventory[result.id];
    remember(state, byId.get(result.id), result, opts.drivers, bundle.revision);
    const after = state.inventory[result.id];
    if (after !== before) await opts.journal({ id: result.id, ...(after ? { entry: after } : {}) });
  });
  for (const id of plan.unchanged) remember(state, byId.get(id), results.get(id)!, opts.drivers, bundle.revision);
  await checkHealth(bundle, results, opts.drivers, opts.healthTimeoutMs, opts.log, opts.signal);
  return { plan, results };
}

/**
 * The inventory after one result: a Ready resource is owned at its spec hash with what it
 * claims (path, unit) and what the apply reported (backup, original state); a pruned one leaves;
 * a failed one keeps what it had, so a failed delete is retried.
 */
function remember(
  state: AgentState,
  d: Desired | undefined,
  r: ResourceResult,
  drivers: Drivers,
  revision: string,
): void {
  if (r.status === 'Pruned') {
    delete state.inventory[r.id];
    return;
  }
  const driver = d ? (drivers[d.kind] as ResourceDriver<Desired, unknown> | undefined) : undefined;
  if (r.status !== 'Ready' || !d || !driver) return;
  const prior = state.inventory[d.id];
  const claims = driver.claims(d);
  // What the host knows the resource by (a path, a unit) changed: the old one was deleted by the
  // apply, and nothing recorded for it (its backup, its original state) belongs to the new one.
  const moved =
    prior !== undefined &&
    ((claims.path !== undefined && prior.path !== undefined && claims.path !== prior.path) ||
      (claims.unit !== undefined && prior.unit !== undefined && claims.unit !== prior.unit));
  const keep =
    prior && !moved ? { path: prior.path, backup: prior.backup, unit: prior.unit, original: prior.original } : {};
  const merged = Object.fromEntries(
    Object.entries({ ...keep, ...claims, ...(r.owned ?? {}) }).filter(([, v]) => v !== undefined),
  );
  state.inventory[d.id] = { kind: d.kind, hash: driver.hash(d), revision, ...merged };
}

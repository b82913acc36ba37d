import { StewardError } from '../errors.js';
import type { Bundle, Desired, Kind } from '../manifest/bundle.js';
import { driverOf, type Change, type Drivers, type InventoryEntry } from '../resources/driver.js';
import { prunable } from './inventory.js';

export type { Drivers } from '../resources/driver.js';
export type Observations = { [K in Kind]?: Map<string, unknown> };

export interface Plan {
  revision: string;
  /** In apply order: desired resources in dependency order, then prunes. */
  changes: Change[];
  /** Desired resources that already match. */
  unchanged: string[];
  /** Things the plan decided not to do, with why (e.g. prune held for an empty bundle). */
  notes: string[];
}

/**
 * Compares the desired bundle with what was observed and returns every change with its reasons.
 * Pure and synchronous: `steward plan` prints exactly this, and the tests need no host.
 */
export function makePlan(
  bundle: Bundle,
  observed: Observations,
  inventory: Record<string, InventoryEntry>,
  drivers: Drivers,
  opts: { allowEmptyPrune: boolean; unobservable?: Partial<Record<Kind, StewardError>> },
): Plan {
  const unobservable = opts.unobservable ?? {};
  const seen: Seen = { observed, inventory, drivers, unobservable };
  const changes: Change[] = [];
  const unchanged: string[] = [];
  const notes: string[] = [];
  for (const d of bundle.resources) {
    const change = planOne(d, seen);
    if (change) changes.push(change);
    else unchanged.push(d.id);
  }
  changes.push(...planRestarts(bundle, changes, unchanged, drivers));
  // Keep dependency order: place each change where its resource stands in the bundle.
  const order = new Map(bundle.resources.map((r, i) => [r.id, i]));
  changes.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
  const prunes = planPrunes(bundle, seen);
  if (prunes.length > 0 && bundle.resources.length === 0 && !opts.allowEmptyPrune) {
    notes.push(
      `the bundle is empty: pruning ${prunes.length} owned resource(s) is held back (set prune.allowEmpty: true to allow it)`,
    );
  } else changes.push(...prunes);
  return { revision: bundle.revision, changes, unchanged, notes };
}

/** What the planner compares the bundle with. */
interface Seen {
  observed: Observations;
  inventory: Record<string, InventoryEntry>;
  drivers: Drivers;
  unobservable: Partial<Record<Kind, StewardError>>;
}

/** The change one desired resource needs, blocked when its kind has no driver or could not be observed. */
function planOne(d: Desired, { observed, inventory, drivers, unobservable }: Seen): Change | undefined {
  const base = { id: d.id, kind: d.kind, drift: false, desired: d };
  const driver = driverOf(drivers, d.kind);
  if (!driver)
    return {
      ...base,
      action: 'create',
      reasons: [`no ${d.kind} driver`],
      blocked: new StewardError('E_KIND_UNSUPPORTED', `this agent cannot manage ${d.kind} resources on this host`, {
        resource: d.id,
      }),
    };
  const cannot = unobservable[d.kind];
  if (cannot)
    return {
      ...base,
      action: 'update',
      reasons: [`cannot observe ${d.kind} resources`],
      blocked: new StewardError(cannot.code, cannot.message, { resource: d.id, retry: cannot.retry }),
    };
  const change = driver.diff(d, observed[d.kind]?.get(d.id), inventory[d.id]);
  return change ? { ...change, id: d.id } : undefined;
}

/** restartOn: a resource whose trigger changes in this run is restarted after it (taken out of `unchanged`). */
function planRestarts(bundle: Bundle, changes: readonly Change[], unchanged: string[], drivers: Drivers): Change[] {
  const changing = new Set(changes.filter((c) => !c.blocked).map((c) => c.id));
  const restarts: Change[] = [];
  for (const d of bundle.resources) {
    const triggers = (d.spec.restartOn ?? []).filter((t) => changing.has(t));
    if (triggers.length === 0 || changing.has(d.id) || !drivers[d.kind]) continue;
    const at = unchanged.indexOf(d.id);
    if (at >= 0) unchanged.splice(at, 1);
    restarts.push({
      id: d.id,
      kind: d.kind,
      action: 'restart',
      reasons: triggers.map((t) => `${t} changes in this run (restartOn)`),
      drift: false,
      desired: d,
    });
  }
  return restarts;
}

/** Prune: what Steward owns (seen on the host or in the inventory) that is no longer desired. */
function planPrunes(bundle: Bundle, { observed, inventory, drivers, unobservable }: Seen): Change[] {
  const prunes: Change[] = [];
  const desired = new Set(bundle.resources.map((r) => r.id));
  const onHost = Object.fromEntries(Object.entries(observed).map(([kind, map]) => [kind, map.keys()]));
  const held = new Set(Object.keys(unobservable) as Kind[]);
  for (const { id, kind } of prunable(inventory, onHost, desired, held)) {
    const change = driverOf(drivers, kind)?.diff(undefined, observed[kind]?.get(id), inventory[id]);
    if (change) prunes.push({ ...change, id });
  }
  return prunes;
}

/** Ids each resource waits for: a failure there skips it. */
export function prerequisites(d: Desired): string[] {
  return [...new Set([...(d.spec.dependsOn ?? []), ...(d.spec.restartOn ?? [])])];
}

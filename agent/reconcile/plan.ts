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
  const changes: Change[] = [];
  const unchanged: string[] = [];
  const notes: string[] = [];
  const desiredIds = new Set(bundle.resources.map((r) => r.id));

  for (const d of bundle.resources) {
    const driver = driverOf(drivers, d.kind);
    if (!driver) {
      const blocked = new StewardError(
        'E_KIND_UNSUPPORTED',
        `this agent cannot manage ${d.kind} resources on this host`,
        { resource: d.id },
      );
      changes.push({
        id: d.id,
        kind: d.kind,
        action: 'create',
        reasons: [`no ${d.kind} driver`],
        drift: false,
        desired: d,
        blocked,
      });
      continue;
    }
    const cannot = unobservable[d.kind];
    if (cannot) {
      changes.push({
        id: d.id,
        kind: d.kind,
        action: 'update',
        reasons: [`cannot observe ${d.kind} resources`],
        drift: false,
        desired: d,
        blocked: new StewardError(cannot.code, cannot.message, { resource: d.id, retry: cannot.retry }),
      });
      continue;
    }
    const change = driver.diff(d, observed[d.kind]?.get(d.id), inventory[d.id]);
    if (change) changes.push({ ...change, id: d.id });
    else unchanged.push(d.id);
  }

  // restartOn: a resource whose trigger changes in this run is restarted after it.
  const changing = new Set(changes.filter((c) => !c.blocked).map((c) => c.id));
  for (const d of bundle.resources) {
    const triggers = (d.spec.restartOn ?? []).filter((t) => changing.has(t));
    if (triggers.length === 0 || changing.has(d.id) || !drivers[d.kind]) continue;
    const at = unchanged.indexOf(d.id);
    if (at >= 0) unchanged.splice(at, 1);
    const restart: Change = {
      id: d.id,
      kind: d.kind,
      action: 'restart',
      reasons: triggers.map((t) => `${t} changes in this run (restartOn)`),
      drift: false,
      desired: d,
    };
    changes.push(restart);
  }
  // Keep dependency order: place each change where its resource stands in the bundle.
  const order = new Map(bundle.resources.map((r, i) => [r.id, i]));
  changes.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));

  // Prune: what Steward owns (seen on the host or in the inventory) that is no longer desired.
  const prunes: Change[] = [];
  const seen = Object.fromEntries(Object.entries(observed).map(([kind, map]) => [kind, map.keys()]));
  const held = new Set(Object.keys(unobservable) as Kind[]);
  for (const { id, kind } of prunable(inventory, seen, desiredIds, held)) {
    const change = driverOf(drivers, kind)?.diff(undefined, observed[kind]?.get(id), inventory[id]);
    if (change) prunes.push({ ...change, id });
  }
  if (prunes.length > 0 && bundle.resources.length === 0 && !opts.allowEmptyPrune) {
    notes.push(
      `the bundle is empty: pruning ${prunes.length} owned resource(s) is held back (set prune.allowEmpty: true to allow it)`,
    );
  } else changes.push(...prunes);

  return { revision: bundle.revision, changes, unchanged, notes };
}

/** Ids each resource waits for: a failure there skips it. */
export function prerequisites(d: Desired): string[] {
  return [...new Set([...(d.spec.dependsOn ?? []), ...(d.spec.restartOn ?? [])])];
}

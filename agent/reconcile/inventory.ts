import { compareText } from '../order.js';
import type { Desired, Kind } from '../manifest/kinds.js';
import { isKind } from '../manifest/kinds.js';
import type { InventoryEntry, Owned } from '../resources/driver.js';
import type { ResourceResult } from './apply.js';

/**
 * What Steward owns on this host, by resource id: the only things it may change or delete.
 * Everything here is pure; the state module stores it, the journal records each change.
 */
export type Inventory = Record<string, InventoryEntry>;

/** What the inventory needs of a desired resource that is Ready: its spec hash and what it claims. */
export interface Applied {
  desired: Desired;
  hash: string;
  /** What the resource owns on the host, known without it (a path, a unit). */
  claims: Owned;
  revision: string;
}

/**
 * The entry of one resource after one result. A Ready resource is owned at its spec hash, with
 * what it claims and what the apply reported (a backup, a unit's original state); a pruned one
 * leaves (undefined); a failed or skipped one keeps what it had, so a failed delete stays owned
 * and is retried. When what the host knows the resource by (a path, a unit) changed, the old one
 * was removed by the apply and nothing recorded for it carries over.
 */
export function record(
  prior: InventoryEntry | undefined,
  result: ResourceResult,
  applied: Applied | undefined,
): InventoryEntry | undefined {
  if (result.status === 'Pruned') return undefined;
  if (result.status !== 'Ready' || !applied) return prior;
  const { claims } = applied;
  const moved =
    prior !== undefined &&
    ((claims.path !== undefined && prior.path !== undefined && claims.path !== prior.path) ||
      (claims.unit !== undefined && prior.unit !== undefined && claims.unit !== prior.unit));
  const kept: Owned =
    prior && !moved ? { path: prior.path, backup: prior.backup, unit: prior.unit, original: prior.original } : {};
  const merged = Object.fromEntries(
    Object.entries({ ...kept, ...claims, ...(result.owned ?? {}) }).filter(([, v]) => v !== undefined),
  ) as Owned;
  return { kind: applied.desired.kind, hash: applied.hash, revision: applied.revision, ...merged };
}

/** The owned entries of one kind, as its driver's `observe` takes them. */
export function ownedOf(inventory: Inventory, kind: Kind): Map<string, InventoryEntry> {
  return new Map(Object.entries(inventory).filter(([, e]) => e.kind === kind));
}

/**
 * What may be pruned: every resource Steward owns (remembered in the inventory, or seen on the
 * host with Steward's labels) that the bundle no longer declares, except kinds that could not be
 * observed this run (an engine that is down proves nothing about its containers). Sorted by id.
 */
export function prunable(
  inventory: Inventory,
  seen: Partial<Record<Kind, Iterable<string>>>,
  desired: ReadonlySet<string>,
  unobservable: ReadonlySet<Kind>,
): Array<{ id: string; kind: Kind }> {
  const candidates = new Map<string, Kind>();
  for (const [kind, ids] of Object.entries(seen) as Array<[Kind, Iterable<string>]>)
    for (const id of ids) candidates.set(id, kind);
  for (const [id, entry] of Object.entries(inventory)) candidates.set(id, entry.kind);
  return [...candidates]
    .filter(([id, kind]) => !desired.has(id) && !unobservable.has(kind))
    .sort(([a], [b]) => compareText(a, b))
    .map(([id, kind]) => ({ id, kind }));
}

/** One inventory change as the journal records it: an entry, or its removal. */
export interface InventoryChange {
  id: string;
  entry?: InventoryEntry;
}

/** Applies changes in order; an entry of unknown shape is dropped, never trusted. Returns how many applied. */
export function merge(inventory: Inventory, changes: Iterable<unknown>): number {
  let n = 0;
  for (const c of changes) {
    if (!c || typeof c !== 'object' || typeof (c as InventoryChange).id !== 'string') continue;
    const { id, entry } = c as InventoryChange;
    if (entry === undefined) delete inventory[id];
    else {
      const valid = parseEntry(entry);
      if (!valid) continue;
      inventory[id] = valid;
    }
    n += 1;
  }
  return n;
}

/** An inventory entry read from disk, checked field by field; undefined when it is not one. */
export function parseEntry(x: unknown): InventoryEntry | undefined {
  if (!x || typeof x !== 'object' || Array.isArray(x)) return undefined;
  const e = x as Record<string, unknown>;
  if (!isKind(e.kind) || typeof e.hash !== 'string' || typeof e.revision !== 'string') return undefined;
  const str = (k: string) => (typeof e[k] === 'string' ? { [k]: e[k] as string } : {});
  const o = e.original as { enabled?: unknown; active?: unknown } | undefined;
  const original =
    o && typeof o === 'object' && typeof o.enabled === 'boolean' && typeof o.active === 'boolean'
      ? { original: { enabled: o.enabled, active: o.active } }
      : {};
  return {
    kind: e.kind,
    hash: e.hash,
    revision: e.revision,
    ...str('path'),
    ...str('backup'),
    ...str('unit'),
    ...original,
  };
}

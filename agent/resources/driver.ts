import type { ErrorCode, StewardError } from '../errors.js';
import type { Desired, Kind } from '../manifest/kinds.js';

/** What a change does. `restart` is a trigger from restartOn; `delete` is a prune. */
export type Action = 'create' | 'update' | 'recreate' | 'start' | 'restart' | 'delete';

/** One change the planner wants, with a reason a human can read for each part of it. */
export interface Change<D extends Desired = Desired, O = unknown> {
  id: string;
  kind: Kind;
  action: Action;
  reasons: string[];
  /** The host had moved away from a spec Steward had already applied: drift being corrected. */
  drift: boolean;
  desired?: D;
  observed?: O;
  /** Known before applying that this change cannot be made (e.g. a name owned by someone else). */
  blocked?: StewardError;
  /** What the inventory remembers of the resource (a prune needs the path Steward wrote). */
  record?: InventoryEntry;
}

/** What the inventory remembers of one owned resource. */
export interface InventoryEntry {
  kind: Kind;
  /** Hash of the spec last applied. */
  hash: string;
  revision: string;
  /** A file Steward wrote (a File's path, a Service's unit file): the only file a prune deletes. */
  path?: string;
  /** Where the file that stood at `path` before Steward first wrote it was kept; a prune restores it. */
  backup?: string;
  /** A Service's unit name. */
  unit?: string;
  /** A unit Steward manages but did not write: its state before Steward first changed it. */
  original?: { enabled: boolean; active: boolean };
}

/** What an apply learned that the inventory must remember (merged into the entry). */
export type Owned = Pick<InventoryEntry, 'path' | 'backup' | 'original' | 'unit'>;

/** One live health reading. `starting` is not an answer yet: a waiting run asks again. */
export interface Health {
  state: 'healthy' | 'unhealthy' | 'starting';
  message: string;
  code?: ErrorCode;
}

/** The timing of a resource's probe: how long a changed resource may take, how often to ask. */
export interface ProbeTiming {
  deadline?: string;
  interval?: string;
  timeout?: string;
}

/** What an apply needs besides the change: the revision it comes from (labels), and SIGTERM. */
export interface ApplyContext {
  revision: string;
  signal: AbortSignal;
}

/**
 * One implementation per kind. `observe` and `apply` touch the host (through host/ only);
 * `diff` is pure and synchronous, so `steward plan` and the planner tests need no host. What a
 * kind can do beyond that is declared by the optional members; a kind without one cannot.
 */
export interface ResourceDriver<D extends Desired, O> {
  readonly kind: Kind;
  /**
   * Live state of every desired resource of this kind and of every one Steward owns, keyed by
   * resource id. One call per kind where the host allows it. Never changes the host.
   */
  observe(
    desired: readonly D[],
    owned: ReadonlyMap<string, InventoryEntry>,
    signal: AbortSignal,
  ): Promise<Map<string, O>>;
  /** Hash of the desired spec: equal hashes mean nothing to change. Pure. */
  hash(desired: D): string;
  /**
   * What would make `observed` match `desired`: undefined when nothing. `desired` undefined
   * means the resource left Git (prune). `record` is what the inventory says was applied. Pure.
   * A `restart` change (restartOn) is planned only for a kind whose rules say restartable.
   */
  diff(desired: D | undefined, observed: O | undefined, record: InventoryEntry | undefined): Change<D, O> | undefined;
  /**
   * Carries out one change. Idempotent: safe to run again after a crash part way through.
   * Returns what the inventory must remember of the resource now (undefined: nothing new).
   */
  apply(change: Change<D, O>, at: ApplyContext): Promise<Owned | undefined>;
  /** One health reading: the kind's own liveness, then the spec's probe. Never changes the host. */
  check(desired: D, signal: AbortSignal): Promise<Health>;
  /**
   * Whether an unchanged resource is read every run (a probe, a docker healthcheck), and its
   * probe's timing. Absent, or undefined for a resource: it is checked only right after a change.
   */
  liveHealth?(desired: D): { probe?: ProbeTiming } | undefined;
  /** What the desired resource owns on the host (a path, a unit), known without the host. Pure. */
  claims?(desired: D): Owned;
  /**
   * A reason the resource cannot be applied on this host at all (a path outside files.roots),
   * found before anything is applied: it rejects the bundle. Pure.
   */
  admit?(desired: D): { pointer: string; message: string } | undefined;
}

/** The driver of each kind this host can manage (resources/registry.ts builds them). */
export type Drivers = { [K in Kind]?: ResourceDriver<Extract<Desired, { kind: K }>, unknown> };

/** A driver seen through the kind-independent interface the reconciler uses. */
export const driverOf = (drivers: Drivers, kind: Kind): ResourceDriver<Desired, unknown> | undefined =>
  drivers[kind] as ResourceDriver<Desired, unknown> | undefined;

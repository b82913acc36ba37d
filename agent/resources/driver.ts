import type { StewardError } from '../errors.js';
import type { Desired, Kind } from '../manifest/bundle.js';

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
}

/** What the inventory remembers of one owned resource. */
export interface InventoryEntry {
  kind: Kind;
  /** Hash of the spec last applied. */
  hash: string;
  revision: string;
}

/**
 * One implementation per kind. `observe` and `apply` touch the host (through host/ only);
 * `diff` is pure and synchronous, so `steward plan` and the planner tests need no host.
 */
export interface ResourceDriver<D extends Desired, O> {
  readonly kind: Kind;
  /**
   * Live state of every desired resource of this kind and of every one Steward owns, keyed by
   * resource id. One call per kind where the host allows it. Never changes the host.
   */
  observe(desired: readonly D[], signal: AbortSignal): Promise<Map<string, O>>;
  /** Hash of the desired spec: equal hashes mean nothing to change. Pure. */
  hash(desired: D): string;
  /**
   * What would make `observed` match `desired`: undefined when nothing. `desired` undefined
   * means the resource left Git (prune). `record` is what the inventory says was applied. Pure.
   */
  diff(desired: D | undefined, observed: O | undefined, record: InventoryEntry | undefined): Change<D, O> | undefined;
  /** Carries out one change. Idempotent: safe to run again after a crash part way through. */
  apply(change: Change<D, O>, signal: AbortSignal): Promise<void>;
  /** Restarts a resource because something it names in restartOn changed in this run. */
  restart(desired: D, signal: AbortSignal): Promise<void>;
}

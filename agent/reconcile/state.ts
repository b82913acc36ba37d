import { join } from 'node:path';
import { readJson, writeJsonAtomic } from '../host/fs.js';
import { KINDS, type Kind } from '../manifest/bundle.js';
import type { InventoryEntry } from '../resources/driver.js';
import type { HostStatus } from '../types/host-status.js';

/** What the agent remembers between runs, in `stateDir/state.json`. */
export interface AgentState {
  version: 1;
  /** The last revision whose bundle was applied (fully or not). */
  appliedRevision: string | null;
  /** The last revision that converged with every resource Ready. */
  lastGoodRevision: string | null;
  /** Everything Steward owns, by resource id, with the spec hash it last applied. */
  inventory: Record<string, InventoryEntry>;
  /** Condition transition times, so they change only when status, reason or message do. */
  conditions: HostStatus['conditions'];
  recentRuns: NonNullable<HostStatus['recentRuns']>;
  /** The last status document built, and whether it reached the status branch. */
  report?: { fingerprint: string; at: string; pushed: boolean; pushedAt?: string };
  /** The number of fetches since the source gitdir was last compacted. */
  fetchesSinceCompaction?: number;
}

export function emptyState(): AgentState {
  return { version: 1, appliedRevision: null, lastGoodRevision: null, inventory: {}, conditions: [], recentRuns: [] };
}

const file = (stateDir: string) => join(stateDir, 'state.json');

/** Loads the state; a missing file is a fresh host. Entries of unknown shape are dropped, not trusted. */
export async function loadState(stateDir: string): Promise<AgentState> {
  const raw = await readJson(file(stateDir));
  if (!raw || typeof raw !== 'object') return emptyState();
  const s = raw as Partial<AgentState>;
  const rev = (v: unknown) => (typeof v === 'string' && /^[0-9a-f]{40}$/.test(v) ? v : null);
  const inventory: Record<string, InventoryEntry> = {};
  for (const [id, e] of Object.entries(s.inventory ?? {})) {
    if (e && KINDS.includes(e.kind as Kind) && typeof e.hash === 'string' && typeof e.revision === 'string') inventory[id] = e;
  }
  return {
    ...emptyState(),
    ...s,
    version: 1,
    appliedRevision: rev(s.appliedRevision),
    lastGoodRevision: rev(s.lastGoodRevision),
    inventory,
    conditions: Array.isArray(s.conditions) ? s.conditions : [],
    recentRuns: Array.isArray(s.recentRuns) ? s.recentRuns : [],
  };
}

export async function saveState(stateDir: string, state: AgentState): Promise<void> {
  await writeJsonAtomic(file(stateDir), state);
}

import { monotonicMs } from '../duration.js';
import type { Logger } from '../log.js';
import type { HostStatus } from '../types/host-status.js';
import type { AgentContext } from './context.js';
import type { Plan } from './plan.js';
import type { RunOutcome } from './report.js';
import {
  appendJournal,
  loadState,
  materialOf,
  saveState,
  stateStamp,
  type AgentState,
  type JournalRecord,
} from './state.js';

/** What a run hands back to its caller (the daemon, `steward once`, `steward plan`, the tests). */
export interface RunReport {
  outcome: RunOutcome;
  plan?: Plan;
  status?: HostStatus;
  published?: 'pushed' | 'unchanged' | 'skipped' | 'failed';
}

/**
 * One run as its steps see it: the state loaded at its start, what it has learned so far
 * (`outcome`), and its inputs (the clock, the signal, apply or plan only). Each step reads it and
 * adds its own part; none keeps anything of it after the run.
 */
export interface RunRecord {
  readonly apply: boolean;
  readonly signal: AbortSignal;
  /** Wall time: timestamps in the state and the status. Elapsed time is monotonicMs() (duration.ts). */
  readonly now: () => Date;
  readonly log: Logger;
  readonly startedMs: number;
  readonly state: AgentState;
  /** The state as it was read (see materialOf), and the stamp of its file: persist compares. */
  readonly loaded: { material: string; stamp: string | undefined };
  readonly outcome: RunOutcome;
  readonly report: RunReport;
  /** A warning for the log and the status document's `warnings`, each said once per run. */
  warn(message: string): void;
}

export interface RunOptions {
  apply: boolean;
  signal: AbortSignal;
  now?: () => Date;
}

/** Loads the state and opens the run's record. */
export async function startRun(ctx: AgentContext, opts: RunOptions): Promise<RunRecord> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const startedMs = monotonicMs();
  const log = ctx.log.child({ component: 'reconcile' });
  const notes: string[] = [];
  const warn = (message: string) => {
    if (notes.includes(message)) return;
    notes.push(message);
    log.warn(message);
  };
  const stamp = await stateStamp(ctx.config.stateDir);
  const kept = ctx.memo?.state;
  // A daemon's state between two runs is the one it saved (or found it need not save), unless
  // someone else wrote the file since (a `steward once`, an operator): then the file is read.
  const state =
    kept && stamp !== undefined && kept.stamp === stamp
      ? structuredClone(kept.state)
      : await loadState(ctx.config.stateDir, warn, now);
  const outcome: RunOutcome = {
    startedAt,
    durationMs: 0,
    desiredRevision: null,
    appliedRevision: state.appliedRevision,
    lastGoodRevision: state.lastGoodRevision,
    phase: 'Failed',
    bundleErrors: [],
    results: new Map(),
    notes,
  };
  const loaded = { material: materialOf(state), stamp };
  return {
    apply: opts.apply,
    signal: opts.signal,
    now,
    log,
    startedMs,
    state,
    loaded,
    outcome,
    report: { outcome },
    warn,
  };
}

/** Records inventory changes; a full disk is a warning (the run's final save retries it). */
export async function journal(ctx: AgentContext, run: RunRecord, records: readonly JournalRecord[]): Promise<void> {
  try {
    await appendJournal(ctx.config.stateDir, records);
  } catch (err) {
    run.warn(`cannot write ${ctx.config.stateDir}/state.journal: ${errnoOf(err)}`);
  }
}

/**
 * Saves the state; a full disk is a warning and a retry next run, never a crash. A run that
 * changed nothing but timings writes nothing (no synced write per poll on a flash card, nor per
 * `steward once` from a timer). The daemon keeps the newest state in memory and brings the file
 * up to date at the next change, a stop or a config reload (flushMemo); `steward once` leaves
 * the file as it was, so its recentRuns are the runs that changed something.
 */
export async function persist(ctx: AgentContext, run: RunRecord): Promise<void> {
  const { memo } = ctx;
  const dir = ctx.config.stateDir;
  try {
    const same = run.loaded.stamp !== undefined && materialOf(run.state) === run.loaded.material;
    if (same && (await stateStamp(dir)) === run.loaded.stamp) {
      if (memo) memo.stateBehind = true;
    } else {
      await saveState(dir, run.state);
      if (memo) memo.stateBehind = false;
    }
    if (!memo) return;
    const stamp = await stateStamp(dir);
    memo.state = stamp === undefined ? undefined : { stamp, state: structuredClone(run.state) };
  } catch (err) {
    if (memo) memo.state = undefined;
    run.warn(`cannot write ${dir}/state.json: ${errnoOf(err)}`);
  }
}

export const errnoOf = (err: unknown): string =>
  (err as NodeJS.ErrnoException).code ?? (err as Error).message ?? String(err);

export const short = (rev: string | null | undefined): string => (rev ? rev.slice(0, 7) : 'none');

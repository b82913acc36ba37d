import type { Logger } from '../log.js';
import type { HostStatus } from '../types/host-status.js';
import type { AgentContext } from './context.js';
import type { Plan } from './plan.js';
import type { RunOutcome } from './report.js';
import { appendJournal, loadState, saveState, type AgentState, type JournalRecord } from './state.js';

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
  /** Wall time: timestamps in the state and the status. Elapsed time is performance.now(). */
  readonly now: () => Date;
  readonly log: Logger;
  readonly startedMs: number;
  readonly state: AgentState;
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
  const startedMs = performance.now();
  const log = ctx.log.child({ component: 'reconcile' });
  const notes: string[] = [];
  const warn = (message: string) => {
    if (notes.includes(message)) return;
    notes.push(message);
    log.warn(message);
  };
  const state = await loadState(ctx.config.stateDir, warn, now);
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
  return { apply: opts.apply, signal: opts.signal, now, log, startedMs, state, outcome, report: { outcome }, warn };
}

/** Records one inventory change; a full disk is a warning (the run's final save retries it). */
export async function journal(ctx: AgentContext, run: RunRecord, record: JournalRecord): Promise<void> {
  try {
    await appendJournal(ctx.config.stateDir, record);
  } catch (err) {
    run.warn(`cannot write ${ctx.config.stateDir}/state.journal: ${errnoOf(err)}`);
  }
}

/** Saves the state; a full disk is a warning and a retry next run, never a crash. */
export async function persist(ctx: AgentContext, run: RunRecord): Promise<void> {
  try {
    await saveState(ctx.config.stateDir, run.state);
  } catch (err) {
    run.warn(`cannot write ${ctx.config.stateDir}/state.json: ${errnoOf(err)}`);
  }
}

export const errnoOf = (err: unknown): string =>
  (err as NodeJS.ErrnoException).code ?? (err as Error).message ?? String(err);

export const short = (rev: string | null | undefined): string => (rev ? rev.slice(0, 7) : 'none');

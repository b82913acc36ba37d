import type { Notice } from '../status/notify.js';
import type { HostStatus } from '../types/host-status.js';
import type { RunRecord } from './record.js';

type Condition = HostStatus['conditions'][number];

/** What a run's events are compared with: the phase and source condition the run before left. */
export interface Before {
  phase?: string;
  source?: Condition;
  ready?: Condition;
}

/** Taken from the state before the run's report replaces it. */
export function before(run: RunRecord): Before {
  const { state } = run;
  const source = state.conditions.find((c) => c.type === 'SourceReady');
  const ready = state.conditions.find((c) => c.type === 'Ready');
  return {
    ...(state.recentRuns[0] ? { phase: state.recentRuns[0].result } : {}),
    ...(source ? { source } : {}),
    ...(ready ? { ready } : {}),
  };
}

const REFUSALS = new Set(['E_GIT_UNSIGNED', 'E_GIT_SIGNATURE', 'E_GIT_HISTORY']);
const MAX_FAILED = 10;

/**
 * The events of one run, most important first: a rollback, a halted rollout, a revision refused
 * (its signature, its history) for the first time, a phase change. Each is said once: the next run that sees
 * the same compares equal to what this one left. Built from the status document only.
 */
export function noticesOf(run: RunRecord, doc: HostStatus, was: Before): Notice[] {
  const ready = doc.conditions.find((c) => c.type === 'Ready');
  const failed = Object.entries(doc.resources)
    .flatMap(([id, r]) =>
      r?.status === 'Failed' ? [{ id, ...(r.code ? { code: r.code } : {}), message: r.message }] : [],
    )
    .slice(0, MAX_FAILED);
  const base = {
    host: doc.host,
    phase: doc.phase,
    previousPhase: was.phase ?? null,
    appliedRevision: doc.appliedRevision,
    failed,
    at: doc.updatedAt,
  };
  const out: Notice[] = [];
  const { rollback, sourceError } = run.outcome;
  if (rollback)
    out.push({
      ...base,
      event: 'rolledBack',
      revision: rollback.from,
      reason: 'RolledBack',
      message: ready?.message ?? '',
      // The status shows the rollback's results; what failed is the rolled-back revision's.
      failed: (rollback.failed ?? []).slice(0, MAX_FAILED),
    });
  const { waiting } = run.outcome;
  if (
    waiting?.reason === 'RolloutHalted' &&
    (was.ready?.reason !== ready?.reason || was.ready?.message !== ready?.message)
  )
    out.push({
      ...base,
      event: 'rolloutHalted',
      revision: waiting.revision,
      reason: waiting.reason,
      message: waiting.message,
    });
  const source = doc.conditions.find((c) => c.type === 'SourceReady');
  const sameSource = was.source?.reason === source?.reason && was.source?.message === source?.message;
  if (sourceError && REFUSALS.has(sourceError.code) && !sameSource)
    out.push({
      ...base,
      event: 'revisionRefused',
      revision: doc.desiredRevision,
      reason: sourceError.code,
      message: sourceError.message,
    });
  if (was.phase !== doc.phase)
    out.push({
      ...base,
      event: 'phaseChanged',
      revision: doc.desiredRevision,
      reason: ready?.reason ?? doc.phase,
      message: ready?.message ?? '',
    });
  return out;
}

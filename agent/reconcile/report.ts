import { compareText } from '../order.js';
import type { StewardError } from '../errors.js';
import type { ResourceResult } from './apply.js';
import type { AgentState } from './state.js';
import type { HostStatus } from '../types/host-status.js';
import { canonical, sha } from '../resources/container-spec.js';
import { signerOf } from './signature.js';
import type { CommitVerdict } from '../source/verify.js';

export type Phase = HostStatus['phase'];
type Condition = HostStatus['conditions'][number];

/** Everything one run learned, as the report needs it. */
export interface RunOutcome {
  startedAt: Date;
  durationMs: number;
  desiredRevision: string | null;
  appliedRevision: string | null;
  lastGoodRevision: string | null;
  /** The run's result, before the status branch is involved. */
  phase: Phase;
  sourceError?: StewardError;
  /** The signature verdict on the head (source.verify). */
  signature?: CommitVerdict;
  /** Errors of the bundle (all of them when it was invalid). */
  bundleErrors: StewardError[];
  results: Map<string, ResourceResult>;
  notes: string[];
  /** Set by the run that rolled back; `failed` are the head's resources that made it. */
  rollback?: {
    from: string;
    to: string;
    at: string;
    reason: string;
    failed?: Array<{ id: string; code: string; message: string }>;
  };
  /** Set when the run applied nothing because the host is suspended. */
  suspended?: { source: string; reason: string };
  /** Set when suspend.yaml pins the host: the revision it enforces instead of the branch's head. */
  pinned?: { source: string; reason: string; revision: string; head: string };
  /**
   * Set when a new head waits and the applied revision is enforced meanwhile: for source.window
   * (`WindowClosed`, with when it opens) or for the earlier waves of a rollout (`RolloutWaiting`,
   * `RolloutHalted`). `message` says what it waits for.
   */
  waiting?: {
    revision: string;
    reason: 'WindowClosed' | 'RolloutWaiting' | 'RolloutHalted';
    message: string;
    opensAt?: string;
  };
}

export interface HostIdentity {
  host: string;
  labels: Record<string, string>;
  agentVersion: string;
  heartbeatSeconds: number;
  facts: HostStatus['facts'];
}

const MAX_RECENT_RUNS = 10;
const MAX_ERRORS = 50;

/** The phase a run ends in. Pure. */
export function phaseOf(results: Map<string, ResourceResult>, invalid: boolean): Phase {
  if (invalid) return 'Invalid';
  if ([...results.values()].some((r) => r.status === 'Failed' || r.status === 'Skipped')) return 'Failed';
  return 'Converged';
}

type Counts = HostStatus['lastRun']['counts'];

/**
 * Builds the status document from a run. Pure: the clock comes in `now`. Condition transition
 * times move only when a condition's status, reason or message changes.
 */
export function buildStatus(
  id: HostIdentity,
  run: RunOutcome,
  state: AgentState,
  now: Date,
  reportCondition?: Omit<Condition, 'lastTransitionTime'>,
): HostStatus {
  const { resources, counts } = resourcesOf(run);
  const errors = [
    ...(run.sourceError ? [run.sourceError] : []),
    ...run.bundleErrors,
    ...[...run.results.values()].flatMap((r) => (r.error ? [r.error] : [])),
  ]
    .slice(0, MAX_ERRORS)
    .map((e) => e.toJSON());
  const want = [...conditionsOf(run, counts), ...(reportCondition ? [reportCondition] : [])];
  const conditions = want.map((c) => {
    const prior = state.conditions.find((p) => p.type === c.type);
    const same = prior && prior.status === c.status && prior.reason === c.reason && prior.message === c.message;
    return { ...c, lastTransitionTime: same ? prior.lastTransitionTime : now.toISOString() };
  });
  const lastRun = {
    startedAt: run.startedAt.toISOString(),
    durationMs: Math.round(run.durationMs),
    revision: run.desiredRevision,
    result: run.phase,
    counts,
  };
  const signer = signerOf(state, run.appliedRevision);
  return {
    host: id.host,
    labels: id.labels,
    agentVersion: id.agentVersion,
    updatedAt: now.toISOString(),
    heartbeatSeconds: id.heartbeatSeconds,
    desiredRevision: run.desiredRevision,
    appliedRevision: run.appliedRevision,
    lastGoodRevision: run.lastGoodRevision,
    ...(signer && run.appliedRevision ? { signer: { revision: run.appliedRevision, ...signer } } : {}),
    phase: run.phase,
    conditions,
    resources,
    lastRun,
    recentRuns: [lastRun, ...state.recentRuns].slice(0, MAX_RECENT_RUNS),
    errors,
    facts: id.facts,
    ...(run.notes.length > 0 ? { warnings: [...new Set(run.notes)] } : {}),
    ...(state.failedRevisions.length > 0 ? { failedRevisions: state.failedRevisions } : {}),
    ...(state.rollback ? { rollback: state.rollback } : {}),
  };
}

/** Each resource's line in the document, sorted by id, and the run's counts. */
function resourcesOf(run: RunOutcome): { resources: HostStatus['resources']; counts: Counts } {
  const resources: HostStatus['resources'] = {};
  const counts = { resources: 0, changed: 0, failed: 0, skipped: 0, pruned: 0, drift: 0 };
  for (const r of [...run.results.values()].sort((a, b) => compareText(a.id, b.id))) {
    resources[r.id] = {
      action: r.action,
      status: r.status,
      health: r.health ?? (r.status === 'Ready' ? 'Healthy' : r.status === 'Failed' ? 'Unhealthy' : 'Unknown'),
      message: r.message,
      driftCorrected: r.drift && r.status === 'Ready',
      ...(r.error ? { code: r.error.code } : {}),
    };
    if (r.status !== 'Pruned') counts.resources += 1;
    if (r.action !== 'none' && (r.status === 'Ready' || r.status === 'Pruned')) counts.changed += 1;
    if (r.status === 'Failed') counts.failed += 1;
    if (r.status === 'Skipped') counts.skipped += 1;
    if (r.status === 'Pruned') counts.pruned += 1;
    if (r.drift && (r.status === 'Ready' || run.phase === 'Suspended')) counts.drift += 1; // suspended: seen, kept
  }
  return { resources, counts };
}

/** SourceReady, Valid, Ready and Healthy, as this run leaves them. */
function conditionsOf(run: RunOutcome, counts: Counts): Array<Omit<Condition, 'lastTransitionTime'>> {
  const unhealthy = [...run.results.values()]
    .filter((r) => r.health === 'Unhealthy')
    .map((r) => r.id)
    .sort();
  const { sourceError, bundleErrors, desiredRevision } = run;
  const checked = run.results.size > 0;
  return [
    sourceError
      ? { type: 'SourceReady', status: 'False', reason: sourceError.code, message: sourceError.message }
      : { type: 'SourceReady', status: 'True', reason: 'Fetched', message: sourceMessage(run) },
    bundleErrors.length > 0
      ? {
          type: 'Valid',
          status: 'False',
          reason: bundleErrors[0]!.code,
          message: `${bundleErrors.length} error(s) in the bundle`,
        }
      : {
          type: 'Valid',
          status: desiredRevision ? 'True' : 'Unknown',
          reason: desiredRevision ? 'Validated' : 'NoRevision',
          message: '',
        },
    run.phase === 'Converged'
      ? {
          type: 'Ready',
          status: 'True',
          reason: 'Converged',
          message: `${counts.resources} resource(s) match ${short(run.appliedRevision)}${run.pinned ? ` (pinned by ${run.pinned.source})` : ''}`,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: run.rollback
            ? 'RolledBack'
            : run.waiting && run.phase === 'Progressing'
              ? run.waiting.reason
              : run.phase,
          message: readyMessage(run, counts),
        },
    unhealthy.length > 0
      ? { type: 'Healthy', status: 'False', reason: 'Unhealthy', message: unhealthy.join(', ') }
      : {
          type: 'Healthy',
          status: checked ? 'True' : 'Unknown',
          reason: checked ? 'Healthy' : 'NothingChecked',
          message: '',
        },
  ];
}

function sourceMessage(run: RunOutcome): string {
  const { pinned } = run;
  if (!pinned) return `at ${run.desiredRevision ?? 'no revision'}`;
  return `pinned at ${pinned.revision} by ${pinned.source}: ${pinned.reason}; the branch is at ${pinned.head}`;
}

function readyMessage(
  run: RunOutcome,
  counts: { resources: number; failed: number; skipped: number; drift: number },
): string {
  if (run.waiting && run.phase === 'Progressing')
    return `${run.waiting.message}; ${counts.resources} resource(s) match ${short(run.appliedRevision)}`;
  if (run.suspended)
    return `suspended by ${run.suspended.source}: ${run.suspended.reason}; ${counts.skipped} change(s) held, ${counts.drift} of them drift`;
  if (run.rollback)
    return `revision ${short(run.rollback.from)} failed its health checks; rolled back to ${short(run.rollback.to)}: ${run.rollback.reason}`;
  if (run.phase === 'Degraded')
    return `revision ${short(run.desiredRevision)} failed before; running ${short(run.appliedRevision)}`;
  if (run.phase === 'Invalid')
    return `revision ${short(run.desiredRevision)} is invalid; nothing of it was applied${run.appliedRevision ? ` (running ${short(run.appliedRevision)})` : ''}`;
  if (run.phase === 'Failed' && run.appliedRevision === null) return 'no revision could be fetched yet';
  return `${counts.failed} failed, ${counts.skipped} skipped`;
}

/**
 * What decides whether a report is worth a commit: the document without timestamps, durations
 * or the run history, which change every run even when nothing else does.
 */
export function fingerprint(doc: HostStatus): string {
  const { updatedAt: _u, lastRun: _l, recentRuns: _r, conditions, ...rest } = doc;
  return sha(canonical({ ...rest, conditions: conditions.map(({ lastTransitionTime: _t, ...c }) => c) }), 32);
}

function short(rev: string | null): string {
  return rev ? rev.slice(0, 7) : 'nothing';
}

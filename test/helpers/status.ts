import { buildStatus } from '../../agent/reconcile/report.js';
import { emptyState } from '../../agent/reconcile/state.js';
import type { HostStatus } from '../../agent/types/host-status.js';

/** The status document of a host that converged at `rev` with nothing to report (tests, bench). */
export function convergedDoc(
  host: string,
  rev: string,
  now: Date,
  opts: { heartbeatSeconds?: number; durationMs?: number; labels?: Record<string, string> } = {},
): HostStatus {
  return buildStatus(
    {
      host,
      labels: opts.labels ?? {},
      agentVersion: '0.1.0',
      heartbeatSeconds: opts.heartbeatSeconds ?? 60,
      facts: {},
    },
    {
      startedAt: now,
      durationMs: opts.durationMs ?? 1,
      desiredRevision: rev,
      appliedRevision: rev,
      lastGoodRevision: rev,
      phase: 'Converged',
      bundleErrors: [],
      results: new Map(),
      notes: [],
    },
    emptyState(),
    now,
  );
}

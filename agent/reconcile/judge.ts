import type { AgentContext } from './context.js';
import type { ResourceResult } from './apply.js';
import { loadBundle } from './choose.js';
import { enforceStep } from './enforce.js';
import { ROLLBACK_CODES } from './health.js';
import { short, type RunRecord } from './record.js';

/**
 * Step 4, for a head that was applied: it is the last good revision when it converged; when
 * what it changed is unhealthy (rollback: auto), the last good bundle is applied again and the
 * head is remembered as failed until the branch moves.
 */
export async function judge(ctx: AgentContext, run: RunRecord, head: string): Promise<void> {
  const { state, outcome } = run;
  if (outcome.phase === 'Converged') state.lastGoodRevision = head;
  const broken = [...outcome.results.values()].filter(
    (r) => r.action !== 'none' && r.status === 'Failed' && r.error && ROLLBACK_CODES.has(r.error.code),
  );
  if (broken.length === 0 || ctx.config.rollback !== 'auto') return;
  const good = state.lastGoodRevision;
  if (!good || good === head) {
    run.warn(`revision ${short(head)} is unhealthy and there is no last good revision to roll back to`);
    return;
  }
  const loaded = await loadBundle(ctx, run, good);
  if (!loaded.bundle) {
    run.warn(`cannot roll back: the last good revision ${short(good)} cannot be loaded`);
    return;
  }
  const why = broken.map((r) => `${r.id}: ${r.message}`).join('; ');
  run.log.error(
    { from: head, to: good, code: 'E_REVISION_FAILED' },
    `rolling back ${short(head)} to ${short(good)}: ${why}`,
  );
  state.failedRevisions = [...state.failedRevisions.filter((r) => r !== head), head].slice(-20);
  state.rollback = { from: head, to: good, at: run.now().toISOString(), reason: why };
  const back = await enforceStep(ctx, run, loaded.bundle);
  mergeRollback(outcome.results, back);
  outcome.phase = 'Degraded';
  outcome.rollback = {
    ...state.rollback,
    failed: broken.map((r) => ({ id: r.id, code: r.error!.code, message: r.message })),
  };
}

/** The failed revision's results stay visible; the rollback's changes are reported on top. */
function mergeRollback(results: Map<string, ResourceResult>, back: Map<string, ResourceResult>): void {
  for (const [id, r] of back)
    if (r.action !== 'none' || !results.has(id)) results.set(id, { ...r, message: `rollback: ${r.message}` });
}

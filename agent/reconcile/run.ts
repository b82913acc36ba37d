import { choose, gateOf, REFUSED_PHASE } from './choose.js';
import type { AgentContext } from './context.js';
import { enforceStep, planStep } from './enforce.js';
import { judge } from './judge.js';
import { report } from './outbox.js';
import { startRun, type RunOptions, type RunReport } from './record.js';
import { phaseOf } from './report.js';
import { followPin, heldResults, suspensionOf } from './suspend.js';
import { syncStep } from './sync.js';
import { waitForRollout } from './rollout.js';
import { waitForWindow } from './window.js';

export type { AgentContext } from './context.js';
export type { RunReport } from './record.js';
export { flushMemo } from './outbox.js';

/**
 * One reconcile run, as its steps:
 *   1. sync     ask Git whether the branch moved; fetch only then (or use the last fetched commit)
 *   2. choose   the head's bundle, unless a gate refuses it (failed before, history rewritten) or
 *               it is invalid: then the last good bundle is enforced instead; a suspend file
 *               holds it all (Suspended) or pins another commit of the branch in the head's place;
 *               while earlier waves have not met their gate (rollout.yaml) or outside source.window,
 *               the applied revision stands in for a new head (Progressing)
 *   3. enforce  observe, plan, apply in order, wait for the health of what changed
 *   4. judge    a head that converged becomes the last good one; one whose changes are unhealthy
 *               is rolled back to the last good bundle (rollback: auto), remembered as failed
 *   5. report   the status document into the outbox, to the status branch, the state to disk
 * Each step records at most one reason in the run record; nothing here throws for bad input or
 * an unreachable server. With `apply: false` it stops after planning and changes nothing.
 */
export async function runOnce(ctx: AgentContext, opts: RunOptions): Promise<RunReport> {
  const run = await startRun(ctx, opts);
  const { outcome, state } = run;
  const fetched = await syncStep(ctx, run);
  if (!fetched) return report(ctx, run);
  let head = fetched;
  let gated = await gateOf(ctx, run, head);
  // Suspended (steward suspend, or hosts/<host>/suspend.yaml at a head that passed its gates):
  // the plan is made and reported, nothing is applied, drift is seen and left alone. A pin in
  // that file makes the pinned revision the one this run enforces instead of the head.
  const from = gated === 'head' ? head : state.appliedRevision;
  let held = await suspensionOf(ctx, run, from);
  if (held?.pin && from) {
    const followed = await followPin(ctx, run, from, held);
    held = followed.held;
    if (followed.pinned) ({ head, gated } = followed.pinned);
  }
  if (!opts.apply) held = undefined; // steward plan: what would be done once resumed
  // A new head waits for the earlier waves of a rollout, then for source.window.
  if (!held) ({ head, gated } = await waitForRollout(ctx, run, head, gated, opts.apply));
  if (!held && !outcome.waiting) ({ head, gated } = waitForWindow(ctx, run, head, gated, opts.apply));
  const { verdict, target } = await choose(ctx, run, head, gated);
  const refused = verdict === 'head' ? undefined : REFUSED_PHASE[verdict];
  if (held) {
    outcome.suspended = held;
    outcome.phase = 'Suspended';
    if (target) outcome.results = heldResults(await planStep(ctx, run, target), held);
    run.log.warn({ source: held.source, reason: held.reason }, `suspended: nothing is applied (${held.reason})`);
  } else if (!target) outcome.phase = refused ?? 'Failed';
  else if (!opts.apply) {
    const plan = await planStep(ctx, run, target);
    outcome.phase = refused ?? (plan.changes.length === 0 ? 'Converged' : 'Progressing');
  } else {
    outcome.results = await enforceStep(ctx, run, target);
    outcome.phase = refused ?? phaseOf(outcome.results, false);
    if (verdict === 'head') await judge(ctx, run, head);
    if (outcome.waiting && outcome.phase === 'Converged') outcome.phase = 'Progressing'; // the head waits
  }
  outcome.appliedRevision = state.appliedRevision;
  outcome.lastGoodRevision = state.lastGoodRevision;
  return report(ctx, run);
}

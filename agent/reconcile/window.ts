import { localTime, windowAt } from '../config/window.js';
import type { Verdict } from './choose.js';
import type { AgentContext } from './context.js';
import { short, type RunRecord } from './record.js';

type Gated = Exclude<Verdict, 'invalid'>;

/**
 * source.window: a revision this host has not applied yet is applied only while the window is
 * open. Outside it the applied revision is enforced in its place, as if the branch had not
 * moved: drift is corrected, its health judged, a failure rolled back. A host that has applied
 * nothing yet applies its first revision at once (there is nothing of Steward's on it to keep
 * running). `steward plan` (`hold` false) plans the head, and says that it would wait.
 */
export function waitForWindow(
  ctx: AgentContext,
  run: RunRecord,
  head: string,
  gated: Gated,
  hold: boolean,
): { head: string; gated: Gated } {
  const w = ctx.config.source.window;
  const applied = run.state.appliedRevision;
  if (!w || !applied || head === applied || gated !== 'head') return { head, gated };
  const now = windowAt(w, run.now());
  if (now.open) return { head, gated };
  const opensAt = localTime(now.opensAt, w.timezone);
  const message = `revision ${short(head)} waits for the change window (source.window), which opens at ${opensAt}`;
  run.outcome.waiting = { revision: head, reason: 'WindowClosed', message, opensAt: now.opensAt.toISOString() };
  run.log.info({ revision: head, applied, opensAt: now.opensAt.toISOString() }, message);
  return hold ? { head: applied, gated: 'head' } : { head, gated };
}

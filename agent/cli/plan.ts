import { formatError } from '../errors.js';
import { createContext } from '../reconcile/context.js';
import { acquireLock, RUN_LOCK_WAIT_MS } from '../daemon/lock.js';
import type { Plan } from '../reconcile/plan.js';
import { runOnce } from '../reconcile/run.js';
import { describeSigner } from '../reconcile/signature.js';
import type { CommitVerdict } from '../source/verify.js';
import { args, configFrom, configOption, loggerFor, type ExitCode, type Io } from './common.js';

export const help = 'steward plan [--config FILE] [--json]   what a run would change, and why; changes nothing';

export async function plan(argv: string[], io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, { ...configOption, json: { type: 'boolean' } });
  const config = await configFrom(values);
  const ctx = await createContext(config, loggerFor(config, true), { signal, facts: false });
  const release = await acquireLock(config.stateDir, 'run', RUN_LOCK_WAIT_MS);
  const { outcome, plan } = await runOnce(ctx, { apply: false, signal }).finally(release);
  const errors = [...(outcome.sourceError ? [outcome.sourceError] : []), ...outcome.bundleErrors];
  if (values.json) {
    io.out(
      JSON.stringify(
        {
          revision: outcome.desiredRevision,
          phase: outcome.phase,
          ...(outcome.signature ? { signature: signatureJson(outcome.signature) } : {}),
          ...(outcome.pinned ? { pinned: outcome.pinned } : {}),
          ...(outcome.waiting ? { waiting: outcome.waiting } : {}),
          changes: plan?.changes.map(toJson) ?? [],
          unchanged: plan?.unchanged ?? [],
          notes: outcome.notes,
          errors: errors.map((e) => e.toJSON()),
        },
        null,
        2,
      ),
    );
  } else {
    for (const e of errors) io.err(formatError(e));
    const sig = outcome.signature;
    if (sig && outcome.desiredRevision)
      io.out(
        sig.ok
          ? `signature: ${outcome.desiredRevision.slice(0, 12)} is signed by ${describeSigner(sig.signer)}`
          : `signature: ${outcome.desiredRevision.slice(0, 12)} is refused (${sig.code}): ${sig.reason}`,
      );
    const pin = outcome.pinned;
    if (pin)
      io.out(
        `pinned at ${pin.revision.slice(0, 12)} by ${pin.source}: ${pin.reason} (the branch is at ${pin.head.slice(0, 12)})`,
      );
    if (outcome.waiting) io.out(`held (${outcome.waiting.reason}): ${outcome.waiting.message}`);
    if (plan) io.out(renderPlan(plan));
  }
  if (outcome.phase === 'Invalid') return 2;
  return plan ? 0 : 1;
}

function signatureJson(v: CommitVerdict) {
  return v.ok ? { verified: true, signer: v.signer } : { verified: false, code: v.code, reason: v.reason };
}

function toJson(c: Plan['changes'][number]) {
  return {
    id: c.id,
    action: c.action,
    reasons: c.reasons,
    drift: c.drift,
    ...(c.blocked ? { blocked: c.blocked.toJSON() } : {}),
  };
}

/** A table: resource, action, reasons; then the unchanged count and the notes. */
export function renderPlan(plan: Plan): string {
  const rows = plan.changes.map((c) => [
    c.id,
    c.blocked ? `${c.action} (blocked)` : c.action,
    [...c.reasons, ...(c.blocked ? [c.blocked.message] : []), ...(c.drift ? ['drift'] : [])].join('; '),
  ]);
  const lines = [
    `revision ${plan.revision.slice(0, 12)}: ${plan.changes.length} change(s), ${plan.unchanged.length} unchanged`,
  ];
  if (rows.length > 0) {
    const head = ['RESOURCE', 'ACTION', 'REASONS'];
    const w = [0, 1].map((i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) lines.push(`${r[0]!.padEnd(w[0]!)}  ${r[1]!.padEnd(w[1]!)}  ${r[2]}`);
  }
  for (const n of plan.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

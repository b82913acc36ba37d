import { short, type RunRecord } from './record.js';
import type { AgentContext } from './context.js';
import { MAX_SIGNATURES, type AgentState, type SignatureRecord } from './state.js';
import { verifyCommit, type CommitVerdict, type Signer } from '../source/verify.js';

/**
 * The signature verdict on `revision` under the context's keys: remembered in the state, so a
 * revision is verified once per set of keys, not once per poll. A commit that cannot be read is
 * refused for this run only (nothing is remembered: the next fetch may bring it).
 */
export async function signatureOf(
  ctx: AgentContext,
  run: RunRecord,
  revision: string,
): Promise<CommitVerdict | undefined> {
  const trust = ctx.trust;
  if (!trust) return undefined;
  const known = run.state.signatures?.find((r) => r.revision === revision && r.trust === trust.digest);
  if (known) return known;
  let verdict: CommitVerdict;
  try {
    const object = await ctx.source.objects.read(revision);
    if (object.type !== 'commit')
      return { ok: false, code: 'E_GIT_SIGNATURE', reason: `${short(revision)} is not a commit` };
    verdict = await verifyCommit(object.data, trust, run.now());
  } catch (err) {
    return {
      ok: false,
      code: 'E_GIT_SIGNATURE',
      reason: `the commit cannot be read to verify it: ${(err as Error).message}`,
    };
  }
  remember(run.state, { ...verdict, revision, trust: trust.digest });
  if (verdict.ok)
    run.log.info(
      { revision, signer: verdict.signer },
      `revision ${short(revision)} is signed by ${describeSigner(verdict.signer)}`,
    );
  return verdict;
}

/** "alice@example.com (SSH key SHA256:…)" */
export function describeSigner(s: Signer): string {
  return `${s.principal || '(no user ID)'} (${s.format === 'ssh' ? 'SSH' : 'OpenPGP'} key ${s.fingerprint})`;
}

/** The signer recorded for a revision, if it was verified. */
export function signerOf(state: AgentState, revision: string | null): Signer | undefined {
  if (!revision) return undefined;
  const found = state.signatures?.findLast((r) => r.revision === revision && r.ok);
  return found?.ok ? found.signer : undefined;
}

/** Keeps the newest verdicts, and always those of the applied and last good revisions. */
function remember(state: AgentState, record: SignatureRecord): void {
  const keep = new Set([state.appliedRevision, state.lastGoodRevision]);
  const all = [
    ...(state.signatures ?? []).filter((r) => r.revision !== record.revision || r.trust !== record.trust),
    record,
  ];
  while (all.length > MAX_SIGNATURES) {
    const i = all.findIndex((r) => !keep.has(r.revision));
    all.splice(i < 0 ? 0 : i, 1);
  }
  state.signatures = all;
}

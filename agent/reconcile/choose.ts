import { StewardError, toStewardError } from '../errors.js';
import { buildBundle, type Bundle } from '../manifest/bundle.js';
import { readManifests, readRepoFile } from '../source/tree.js';
import type { AgentContext } from './context.js';
import { short, type RunRecord } from './record.js';
import type { Phase } from './report.js';
import { resolveBundle } from './resolve.js';
import { signatureOf } from './signature.js';

/** Why the head is, or is not, the bundle a run enforces. */
export type Verdict = 'head' | 'invalid' | 'failed' | 'refused';

export interface Choice {
  verdict: Verdict;
  /** What this run enforces: the head's bundle, else the last good one, else nothing. */
  target?: Bundle;
}

/**
 * A check a head must pass before its bundle is read; the first one that refuses decides, and
 * its refusal names the phase the run ends in. Gates are the verification seam: a signature
 * check is one more entry in GATES. A gate records its own reason (a warning, a source error).
 */
type Gate = (
  ctx: AgentContext,
  run: RunRecord,
  head: string,
) => Promise<Exclude<Verdict, 'head' | 'invalid'> | undefined>;

const GATES: Gate[] = [notFailedBefore, signedByTrustedKey, descendsFromApplied];

/** The phase a run ends in when its head was not applied for `verdict`. */
export const REFUSED_PHASE: Record<Exclude<Verdict, 'head'>, Phase> = {
  invalid: 'Invalid',
  failed: 'Degraded',
  refused: 'Failed',
};

/**
 * Step 2a: whether the head passes its gates ('head'), or which refused it. A pinned revision
 * (suspend.yaml `pin:`) passes the same gates but the ancestry one: it is checked to be on the
 * branch below the head instead, and the applied revision need not descend from it.
 */
export async function gateOf(
  ctx: AgentContext,
  run: RunRecord,
  head: string,
  opts: { pinned?: boolean } = {},
): Promise<Exclude<Verdict, 'invalid'>> {
  for (const gate of GATES) {
    if (opts.pinned && gate === descendsFromApplied) continue;
    const refused = await gate(ctx, run, head);
    if (refused) return refused;
  }
  return 'head';
}

/**
 * Step 2b: the head's bundle, unless a gate refused the head (`gated`) or its bundle is invalid;
 * then the last good bundle is enforced instead, so drift is still corrected.
 */
export async function choose(
  ctx: AgentContext,
  run: RunRecord,
  head: string,
  gated: Exclude<Verdict, 'invalid'>,
): Promise<Choice> {
  let verdict: Verdict = gated;
  if (verdict === 'head') {
    const loaded = await loadBundle(ctx, run, head);
    run.outcome.bundleErrors = loaded.errors;
    if (loaded.bundle) return { verdict, target: loaded.bundle };
    verdict = 'invalid';
    for (const e of loaded.errors) run.log.error({ code: e.code, ...e.detail }, e.message);
  }
  const good = run.state.lastGoodRevision;
  if (!good || good === head) return { verdict };
  const loaded = await loadBundle(ctx, run, good);
  if (!loaded.bundle) {
    run.warn(`the last good revision ${short(good)} cannot be loaded: ${loaded.errors[0]?.message ?? 'unknown error'}`);
    return { verdict };
  }
  run.warn(`enforcing the last good revision ${short(good)} meanwhile`);
  return { verdict, target: loaded.bundle };
}

/** What loading a revision gave: its bundle, or why there is none. */
export interface LoadedBundle {
  bundle?: Bundle;
  errors: StewardError[];
}

/** Revisions whose loaded bundle a context keeps: the head and the last good one. */
const BUNDLES_KEPT = 2;

/**
 * Loads and validates the bundle at a commit (manifests and the files they source). A revision
 * does not change, so what it gave is kept in the context (ctx.bundles) and an idle poll does not
 * read, parse and check it again; a failure to read the store is not kept (it may pass next time).
 */
export async function loadBundle(ctx: AgentContext, run: RunRecord, revision: string): Promise<LoadedBundle> {
  const kept = ctx.bundles?.get(revision);
  const got = kept ?? (await readBundle(ctx, revision));
  if (got.missing.length > 0 && revision === run.outcome.desiredRevision)
    run.outcome.notes.push(`not at ${short(revision)}: ${got.missing.join(', ')}`);
  if (!kept && got.keep && ctx.bundles) {
    ctx.bundles.set(revision, got);
    for (const old of ctx.bundles.keys()) if (ctx.bundles.size > BUNDLES_KEPT) ctx.bundles.delete(old);
  }
  return got.loaded;
}

/** A revision as read, as ctx.bundles keeps it. */
export interface ReadBundle {
  loaded: LoadedBundle;
  /** The configured paths the revision does not have. */
  missing: string[];
  keep: boolean;
}

async function readBundle(ctx: AgentContext, revision: string): Promise<ReadBundle> {
  const { config } = ctx;
  try {
    const read = await readManifests(ctx.source.objects, revision, config.source.paths);
    const built = buildBundle(revision, read.files);
    const errors = [...read.errors, ...built.errors];
    const done = (loaded: LoadedBundle) => ({ loaded, missing: read.missing, keep: true });
    if (!built.bundle || errors.length > 0) return done({ errors });
    const resolved = await resolveBundle(
      built.bundle,
      ctx.drivers,
      (path) => readRepoFile(ctx.source.objects, revision, path),
      ctx.secrets,
    );
    return done(resolved.length > 0 ? { errors: resolved } : { bundle: built.bundle, errors: [] });
  } catch (err) {
    const e = toStewardError(err, 'E_GIT_NO_REVISION', `cannot read revision ${short(revision)}`);
    return { loaded: { errors: [e] }, missing: [], keep: false };
  }
}

/** A revision rolled back for failing its health checks is not tried again until the branch moves. */
async function notFailedBefore(_ctx: AgentContext, run: RunRecord, head: string) {
  if (!run.state.failedRevisions.includes(head)) return undefined;
  run.warn(
    `revision ${short(head)} failed its health checks and was rolled back; it is not tried again until the branch moves`,
  );
  return 'failed' as const;
}

/** With source.verify, a head not signed by a listed key is refused (the verdict is kept per revision). */
async function signedByTrustedKey(ctx: AgentContext, run: RunRecord, head: string) {
  if (!ctx.trust) return undefined;
  const applied = run.state.appliedRevision;
  // The applied revision's signer is what the status names; verified once if it never was.
  if (applied && applied !== head) await signatureOf(ctx, run, applied);
  const verdict = await signatureOf(ctx, run, head);
  if (!verdict) return undefined;
  run.outcome.signature = verdict;
  if (verdict.ok) return undefined;
  const error = new StewardError(verdict.code, `commit ${short(head)} is not applied: ${verdict.reason}`);
  run.outcome.sourceError = error;
  run.log.error({ code: error.code, head }, error.message);
  return 'refused' as const;
}

/** A head that does not descend from the applied revision is refused (once checked, remembered). */
async function descendsFromApplied(ctx: AgentContext, run: RunRecord, head: string) {
  const { state } = run;
  const applied = state.appliedRevision;
  if (!applied || head === applied || ctx.config.source.allowHistoryRewrite) return undefined;
  if (state.refusedRevision !== head) {
    let related: boolean | 'unknown';
    try {
      related = await ctx.source.isDescendant(ctx.config.source.branch, head, applied);
    } catch (err) {
      run.warn(`cannot check that ${short(head)} descends from ${short(applied)}: ${(err as Error).message}`);
      return undefined;
    }
    if (related === 'unknown')
      run.warn(`${short(head)} is more than 1000 commits past ${short(applied)}; its ancestry was not verified`);
    if (related !== false) return undefined;
    state.refusedRevision = head;
  }
  const error = new StewardError(
    'E_GIT_HISTORY',
    `the branch was rewritten: ${short(head)} does not descend from the applied revision ${short(applied)}; refused (set source.allowHistoryRewrite: true to accept it)`,
  );
  run.outcome.sourceError = error;
  run.log.error({ code: error.code, head, applied }, error.message);
  return 'refused' as const;
}

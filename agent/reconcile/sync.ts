import { StewardError, toStewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AgentContext } from './context.js';
import type { RunRecord } from './record.js';
import type { AgentState } from './state.js';
import { MAX_PACKS, type GitRepo } from '../source/repo.js';

export interface SyncResult {
  /** The head to reconcile: the branch's commit, or the last fetched one when Git failed. */
  revision?: string;
  error?: StewardError;
}

/** Backoff after `failures` Git failures in a row: doubling from the poll interval, capped, with jitter. */
export function backoffMs(failures: number, intervalMs: number, random = Math.random): number {
  const cap = Math.min(5 * 60_000, Math.max(intervalMs, 4 * intervalMs));
  const base = Math.min(cap, intervalMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random() / 2));
}

/**
 * Asks the server whether the branch moved (one request) and fetches only when
 * it did. After a failure the server is left alone until the backoff ends, while runs go on
 * enforcing the last fetched commit; the first successful contact resets it. Never throws.
 */
export async function sync(
  repo: GitRepo,
  branch: string,
  state: AgentState,
  intervalMs: number,
  /** The run's clock (tests pass a fake one; nothing here reads the system time). */
  now: () => Date,
  log: Logger,
): Promise<SyncResult> {
  await repo.init();
  repo.freshCache();
  const local = await repo.localHead(branch);
  if (state.source && Date.parse(state.source.retryAt) > now().getTime()) {
    const error = new StewardError(
      state.source.error.code as StewardError['code'],
      `${state.source.error.message} (next try at ${state.source.retryAt})`,
      { retry: 'transient' },
    );
    // Said on every run it holds, so `steward once` in a backoff says why it did not fetch.
    log.warn(
      { code: error.code, revision: local, failures: state.source.failures },
      `${error.message}; ${local ? `using the last fetched revision ${local.slice(0, 7)}` : 'nothing fetched yet'}`,
    );
    return { ...(local ? { revision: local } : {}), error };
  }
  try {
    const remote = await repo.remoteHead(branch);
    if (!remote)
      throw new StewardError('E_GIT_NO_BRANCH', `branch "${branch}" does not exist on the server`, {
        retry: 'transient',
      });
    delete state.source;
    if (remote === local) return { revision: local };
    const revision = await repo.fetch(branch, remote);
    log.info({ revision, previous: local }, 'fetched a new revision');
    if ((await repo.packCount()) > MAX_PACKS) {
      const keep = [revision, state.appliedRevision, state.lastGoodRevision].filter((x): x is string => Boolean(x));
      const { before, after } = await repo.compact(keep);
      log.info({ before, after }, 'compacted the source object store');
    }
    return { revision };
  } catch (err) {
    const error = toStewardError(err, 'E_GIT_FETCH');
    const failures = (state.source?.failures ?? 0) + 1;
    const wait = backoffMs(failures, intervalMs);
    // From the moment of the failure, not the run's start: a timeout may have taken a while.
    state.source = {
      failures,
      retryAt: new Date(now().getTime() + wait).toISOString(),
      error: { code: error.code, message: error.message },
    };
    log.warn(
      { code: error.code, revision: local, failures, retryInMs: wait },
      `${error.message}; ${local ? `using the last fetched revision ${local.slice(0, 7)}` : 'nothing fetched yet'}`,
    );
    return { ...(local ? { revision: local } : {}), error };
  }
}

/** Step 1 as the run sees it: the head to reconcile, or none (the run then only reports why). */
export async function syncStep(ctx: AgentContext, run: RunRecord): Promise<string | undefined> {
  const { config } = ctx;
  const { revision, error } = await sync(
    ctx.source,
    config.source.branch,
    run.state,
    config.source.intervalMs,
    run.now,
    run.log,
  );
  run.outcome.desiredRevision = revision ?? null;
  if (error) run.outcome.sourceError = error;
  if (!revision) run.outcome.sourceError ??= new StewardError('E_GIT_NO_REVISION', 'no revision has been fetched yet');
  return revision;
}

import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { StewardError, toStewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GitRepo } from '../source/repo.js';
import type { HostStatus } from '../types/host-status.js';
import { commitMessage } from './report.js';
import { faultPoint } from '../host/fs.js';

export interface PublishResult {
  /** 'pushed', or 'unchanged' when the branch already held exactly this document. */
  outcome: 'pushed' | 'unchanged';
  commit?: string;
  attempts: number;
}

type TreeEntry = { mode: string; path: string; oid: string; type: 'blob' | 'tree' | 'commit' };

/**
 * Writes `hosts/<host>/status.json` on the status branch, without a checkout: the new blob is
 * spliced into the tip's tree (only the two trees on its path are rewritten), committed on top of
 * the tip and pushed. A push refused because another host pushed first is rebuilt on the new tip
 * and retried with jittered backoff, so no host's update is lost and none overwrites another's.
 */
export async function publishStatus(repo: GitRepo, branch: string, doc: HostStatus, log: Logger, opts: { attempts?: number; signal?: AbortSignal } = {}): Promise<PublishResult> {
  const attempts = opts.attempts ?? 8;
  const path = ['hosts', doc.host, 'status.json'];
  const text = JSON.stringify(doc, null, 2) + '\n';
  let last: StewardError | undefined;
  await repo.init();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const tip = await repo.remoteHead(branch);
      if (tip && !(await repo.hasCommit(tip))) await repo.fetch(branch);
      const built = await repo.exclusive(() => buildCommit(repo.gitdir, branch, tip, path, text, doc));
      if (!built) return { outcome: 'unchanged', ...(tip ? { commit: tip } : {}), attempts: attempt };
      faultPoint('during-status-commit');
      await repo.push(branch);
      return { outcome: 'pushed', commit: built, attempts: attempt };
    } catch (err) {
      last = toStewardError(err, 'E_STATUS_PUSH', 'cannot publish status');
      const retryable = last.code === 'E_STATUS_PUSH' || last.code === 'E_GIT_FETCH';
      if (!retryable || attempt === attempts || opts.signal?.aborted) break;
      const delay = Math.min(3000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random());
      log.debug({ attempt, delayMs: Math.round(delay), code: last.code }, 'status push refused; rebuilding on the new tip');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  throw last ?? new StewardError('E_STATUS_PUSH', 'cannot publish status', { retry: 'transient' });
}

/** Commits the new document on top of `tip`; undefined when the tip already holds it. */
async function buildCommit(gitdir: string, branch: string, tip: string | undefined, path: string[], text: string, doc: HostStatus): Promise<string | undefined> {
  const blob = await git.writeBlob({ fs, gitdir, blob: Buffer.from(text) });
  const rootOid = tip ? (await git.readCommit({ fs, gitdir, oid: tip })).commit.tree : undefined;
  const tree = await splice(gitdir, rootOid, path, blob);
  if (tree === rootOid) return undefined;
  const when = Math.floor(Date.parse(doc.updatedAt) / 1000);
  const author = { name: doc.host, email: `${doc.host}@steward.invalid`, timestamp: when, timezoneOffset: 0 };
  return git.commit({ fs, gitdir, ref: `refs/heads/${branch}`, tree, parent: tip ? [tip] : [], message: commitMessage(doc), author, committer: author });
}

/** Returns the oid of `treeOid` with `blob` placed at `path` (trees created as needed). */
async function splice(gitdir: string, treeOid: string | undefined, path: string[], blob: string): Promise<string> {
  const [name, ...rest] = path as [string, ...string[]];
  const entries: TreeEntry[] = treeOid ? ((await git.readTree({ fs, gitdir, oid: treeOid })).tree as TreeEntry[]) : [];
  const existing = entries.find((e) => e.path === name);
  let entry: TreeEntry;
  if (rest.length === 0) {
    if (existing?.oid === blob && existing.type === 'blob') return treeOid!;
    entry = { mode: '100644', path: name, oid: blob, type: 'blob' };
  } else {
    const sub = await splice(gitdir, existing?.type === 'tree' ? existing.oid : undefined, rest, blob);
    if (existing?.oid === sub) return treeOid!;
    entry = { mode: '040000', path: name, oid: sub, type: 'tree' };
  }
  const next = entries.filter((e) => e.path !== name).concat(entry);
  return git.writeTree({ fs, gitdir, tree: next });
}

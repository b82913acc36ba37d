import { join } from 'node:path';
import { open, readFile, rename, rm, stat } from '../files.js';
import { faultPoint, readJson, writeJsonAtomic } from '../host/fs.js';
import type { InventoryEntry } from '../resources/driver.js';
import { merge, parseEntry } from './inventory.js';
import type { HostStatus } from '../types/host-status.js';
import type { CommitVerdict } from '../source/verify.js';

/** A signature verdict on a revision (source.verify), and the digest of the keys it was reached with. */
export type SignatureRecord = CommitVerdict & { revision: string; trust: string };

/** What the agent remembers between runs, in `stateDir/state.json`. */
export interface AgentState {
  version: 1;
  /** The last revision whose bundle was applied (fully or not). */
  appliedRevision: string | null;
  /** The last revision that converged with every resource Ready. */
  lastGoodRevision: string | null;
  /** Everything Steward owns, by resource id, with the spec hash it last applied. */
  inventory: Record<string, InventoryEntry>;
  /** Condition transition times, so they change only when status, reason or message do. */
  conditions: HostStatus['conditions'];
  recentRuns: NonNullable<HostStatus['recentRuns']>;
  /** The last status document built, and whether it reached the status branch. */
  report?: { fingerprint: string; at: string; pushed: boolean; pushedAt?: string };
  /** Revisions that failed their health checks and were rolled back: not tried again until the branch moves. */
  failedRevisions: string[];
  /** The last automatic rollback. */
  rollback?: { from: string; to: string; at: string; reason: string };
  /** A head refused because it does not descend from the applied revision (checked once). */
  refusedRevision?: string;
  /** Signature verdicts, newest last: computed once per revision and set of keys, not per poll. */
  signatures?: SignatureRecord[];
  /** Git failures in a row, and when the server may be asked again (capped backoff with jitter). */
  source?: { failures: number; retryAt: string; error: { code: string; message: string } };
}

export function emptyState(): AgentState {
  return {
    version: 1,
    appliedRevision: null,
    lastGoodRevision: null,
    inventory: {},
    conditions: [],
    recentRuns: [],
    failedRevisions: [],
  };
}

const file = (stateDir: string) => join(stateDir, 'state.json');
const journalFile = (stateDir: string) => join(stateDir, 'state.journal');

/** One inventory change, appended to the journal as it happens: an entry, or its removal. */
export interface JournalRecord {
  id: string;
  entry?: InventoryEntry;
}

/**
 * Appends inventory changes to `stateDir/state.journal` and syncs them: a crash after this
 * loses nothing of those changes. One small append per change (or per batch of changes made at
 * the same time) instead of rewriting state.json (1.7 MB with 10,000 Files: the rewrites made a
 * 10,000-File run quadratic). saveState folds the journal into state.json and empties it;
 * loadState replays what is left.
 */
export async function appendJournal(stateDir: string, records: readonly JournalRecord[]): Promise<void> {
  const fh = await open(journalFile(stateDir), 'a', 0o600);
  try {
    const size = (await fh.stat()).size;
    try {
      await fh.appendFile(records.map((r) => JSON.stringify(r) + '\n').join(''));
      await fh.sync();
    } catch (err) {
      // A part written (a full disk) would merge with the next record into one unreadable line.
      await fh.truncate(size).catch(() => undefined);
      throw err;
    }
  } finally {
    await fh.close();
  }
  faultPoint('after-journal');
}

/** Replays journal lines onto `inventory`. A torn last line (a crash mid-append) is skipped. */
function replay(text: string, inventory: Record<string, InventoryEntry>): number {
  const records: unknown[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      records.push(JSON.parse(line));
    } catch {
      continue;
    }
  }
  return merge(inventory, records);
}

/**
 * Loads the state; a missing file is a fresh host. Every field is checked as it is read:
 * what has the wrong shape is dropped, not trusted. A file that is not JSON (it cannot be
 * half-written: writes are atomic, but a disk can fail) is moved aside as
 * state.json.corrupt-<time> and the run starts from an empty state: containers are still
 * recognised by their labels, and the warning says what was lost.
 */
export async function loadState(
  stateDir: string,
  warn: (msg: string) => void = () => undefined,
  now: () => Date = () => new Date(),
): Promise<AgentState> {
  let raw: unknown;
  try {
    raw = await readJson(file(stateDir));
  } catch (err) {
    const aside = `${file(stateDir)}.corrupt-${now().getTime()}`;
    await rename(file(stateDir), aside).catch(() => undefined);
    warn(`state file unreadable (${(err as Error).message}); moved to ${aside}, starting from an empty state`);
    return emptyState();
  }
  // A first run cut off part way has only its journal.
  const state =
    raw && typeof raw === 'object' && !Array.isArray(raw) ? parseState(raw as Record<string, unknown>) : emptyState();
  replay(await readFile(journalFile(stateDir), 'utf8').catch(() => ''), state.inventory);
  return state;
}

const isRevision = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{40}$/.test(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/** Verdicts kept: the applied and last good revisions' and those of the last few heads. */
export const MAX_SIGNATURES = 8;

function isSignatureRecord(r: unknown): r is SignatureRecord {
  if (!isObject(r) || !isRevision(r.revision) || !isString(r.trust)) return false;
  if (r.ok === true)
    return (
      isObject(r.signer) &&
      (r.signer.format === 'ssh' || r.signer.format === 'openpgp') &&
      isString(r.signer.fingerprint) &&
      isString(r.signer.principal)
    );
  return r.ok === false && (r.code === 'E_GIT_UNSIGNED' || r.code === 'E_GIT_SIGNATURE') && isString(r.reason);
}

/** The state as read from disk, field by field. */
function parseState(s: Record<string, unknown>): AgentState {
  const state = emptyState();
  if (isRevision(s.appliedRevision)) state.appliedRevision = s.appliedRevision;
  if (isRevision(s.lastGoodRevision)) state.lastGoodRevision = s.lastGoodRevision;
  if (isObject(s.inventory))
    for (const [id, e] of Object.entries(s.inventory)) {
      const entry = parseEntry(e);
      if (entry) state.inventory[id] = entry;
    }
  if (Array.isArray(s.conditions))
    state.conditions = s.conditions.filter(
      (c): c is AgentState['conditions'][number] =>
        isObject(c) && ['type', 'status', 'reason', 'message', 'lastTransitionTime'].every((k) => isString(c[k])),
    );
  if (Array.isArray(s.recentRuns))
    state.recentRuns = s.recentRuns.filter(
      (r): r is AgentState['recentRuns'][number] =>
        isObject(r) &&
        isString(r.startedAt) &&
        typeof r.durationMs === 'number' &&
        isString(r.result) &&
        isObject(r.counts),
    );
  if (Array.isArray(s.failedRevisions)) state.failedRevisions = s.failedRevisions.filter(isRevision).slice(-20);
  const report = s.report;
  if (isObject(report) && isString(report.fingerprint) && isString(report.at) && typeof report.pushed === 'boolean')
    state.report = {
      fingerprint: report.fingerprint,
      at: report.at,
      pushed: report.pushed,
      ...(isString(report.pushedAt) ? { pushedAt: report.pushedAt } : {}),
    };
  const rb = s.rollback;
  if (isObject(rb) && isRevision(rb.from) && isRevision(rb.to) && isString(rb.at) && isString(rb.reason))
    state.rollback = { from: rb.from, to: rb.to, at: rb.at, reason: rb.reason };
  if (isRevision(s.refusedRevision)) state.refusedRevision = s.refusedRevision;
  if (Array.isArray(s.signatures)) {
    const records = s.signatures.filter(isSignatureRecord);
    if (records.length > 0) state.signatures = records.slice(-MAX_SIGNATURES);
  }
  const src = s.source;
  if (
    isObject(src) &&
    typeof src.failures === 'number' &&
    isString(src.retryAt) &&
    isObject(src.error) &&
    isString(src.error.code) &&
    isString(src.error.message)
  )
    state.source = {
      failures: src.failures,
      retryAt: src.retryAt,
      error: { code: src.error.code, message: src.error.message },
    };
  return state;
}

/** Writes the whole state atomically, then empties the journal it now contains. */
export async function saveState(stateDir: string, state: AgentState): Promise<void> {
  await writeJsonAtomic(file(stateDir), state);
  await rm(journalFile(stateDir), { force: true });
}

/**
 * The part of the state that must survive a restart: all of it but the timings of the last few
 * runs and when the last report was built. A run that changes none of it writes nothing.
 */
export function materialOf(state: AgentState): string {
  const { recentRuns: _r, report, ...rest } = state;
  return JSON.stringify({ ...rest, report: report && { ...report, at: undefined } });
}

/**
 * Identifies the state.json on disk without reading it (inode, size, mtime); undefined when
 * there is none or a journal is waiting to be replayed. Another writer (`steward once` between
 * two polls of the daemon) changes it, and the daemon then reads the file again.
 */
export async function stateStamp(stateDir: string): Promise<string | undefined> {
  try {
    if (
      await stat(journalFile(stateDir)).then(
        () => true,
        () => false,
      )
    )
      return undefined;
    const st = await stat(file(stateDir));
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

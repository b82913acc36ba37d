import { readRollout, ROLLOUT_FILE, MAX_ROLLOUT_BYTES, waveOf, type Rollout, type Wave } from '../manifest/rollout.js';
import { readFleet, type FleetRow } from '../status/fleet.js';
import type { Verdict } from './choose.js';
import type { AgentContext } from './context.js';
import type { RunOutcome } from './report.js';
import { short, type RunRecord } from './record.js';

type Gated = Exclude<Verdict, 'invalid'>;
type Waiting = NonNullable<RunOutcome['waiting']>;

/**
 * Staged rollouts (rollout.yaml `waves:`): a host of wave N applies a new head only once every
 * earlier wave met its gate for it, as their status documents on the status branch say. Until
 * then the applied revision is enforced in its place (drift corrected, health judged, a failure
 * rolled back). A head that a host of an earlier wave failed or rolled back halts the rollout:
 * no later wave applies it, until the branch moves. The first wave, a host that applied nothing
 * yet and a pinned host do not wait. rollout.yaml is read at the head, which passed its gates
 * (a signature with source.verify): a change to the waves takes effect as any change does.
 * `steward plan` (`hold` false) plans the head, and says that it would wait.
 */
export async function waitForRollout(
  ctx: AgentContext,
  run: RunRecord,
  head: string,
  gated: Gated,
  hold: boolean,
): Promise<{ head: string; gated: Gated }> {
  const applied = run.state.appliedRevision;
  if (!applied || head === applied || gated !== 'head' || run.outcome.pinned) {
    delete ctx.fleetCache; // kept only while this host waits
    return { head, gated };
  }
  const waves = await wavesAt(ctx, head);
  const mine = waveOf(waves, ctx.config.labels);
  if (mine === 0) return { head, gated };
  const waiting = await gateFor(ctx, run, head, waves, mine);
  if (!waiting) return { head, gated };
  run.outcome.waiting = waiting;
  run.log.info({ revision: head, applied, reason: waiting.reason }, waiting.message);
  return hold ? { head: applied, gated: 'head' } : { head, gated };
}

/** rollout.yaml at a revision: not there (undefined), over MAX_ROLLOUT_BYTES (its size), or read. */
export type RolloutRead = { rollout: Rollout } | { tooLarge: number } | undefined;

/**
 * rollout.yaml at `revision`, read and parsed once per revision: suspend.ts (its `suspend:`) and
 * the wave gate both ask on every poll, and a revision does not change. A store that cannot be
 * read is answered "not there" and not kept (the next poll asks again).
 */
export async function rolloutAt(ctx: AgentContext, revision: string): Promise<RolloutRead> {
  if (ctx.rollout?.revision === revision) return ctx.rollout.read;
  let read: RolloutRead;
  try {
    const entry = await ctx.source.objects.resolvePath(revision, ROLLOUT_FILE);
    if (!entry) read = undefined;
    else if (entry.type !== 'blob' || entry.mode === '120000')
      read = { rollout: { suspend: [], waves: [], problems: ['must be a regular file (not a symlink or a folder)'] } };
    else {
      const body = await ctx.source.objects.readBlob(entry.oid);
      read =
        body.length > MAX_ROLLOUT_BYTES ? { tooLarge: body.length } : { rollout: readRollout(body.toString('utf8')) };
    }
  } catch {
    return undefined;
  }
  ctx.rollout = { revision, read };
  return read;
}

/** The waves at `revision`; none when it has none (a broken or oversized file suspends: suspend.ts). */
async function wavesAt(ctx: AgentContext, revision: string): Promise<Wave[]> {
  const read = await rolloutAt(ctx, revision);
  return read && 'rollout' in read && read.rollout.problems.length === 0 ? read.rollout.waves : [];
}

/**
 * Why a host of wave `mine` may not apply `head` yet, or undefined when every earlier wave met
 * its gate. Exported for bench/rollout-gate.ts.
 */
export async function gateFor(
  ctx: AgentContext,
  run: RunRecord,
  head: string,
  waves: Wave[],
  mine: number,
): Promise<Waiting | undefined> {
  const name = mine < waves.length ? `wave "${waves[mine]!.name}"` : 'the hosts no wave selects';
  let rows: FleetRow[];
  try {
    ctx.fleetCache ??= new Map();
    ({ rows } = await readFleet(ctx.status, ctx.config.status.branch, run.now(), { cache: ctx.fleetCache }));
  } catch (err) {
    const message = `revision ${short(head)} waits: the status of the earlier waves cannot be read (${(err as Error).message.slice(0, 200)})`;
    return { revision: head, reason: 'RolloutWaiting', message };
  }
  const later = async (rev: string) =>
    (await ctx.source.isDescendant(ctx.config.source.branch, rev, head).catch(() => false)) === true;
  const others = rows.filter((r) => r.host !== ctx.config.host);
  const progress = await waveProgress(waves, others, head, run.now(), later, mine);
  const failed = progress.flatMap((p) => p.failed);
  if (failed.length > 0) {
    const hosts = failed.slice(0, 10).join(', ') + (failed.length > 10 ? ` and ${failed.length - 10} more` : '');
    const message = `revision ${short(head)} failed on ${hosts} of an earlier wave; the rollout is halted for ${name} until the branch moves`;
    return { revision: head, reason: 'RolloutHalted', message };
  }
  const behind = progress.find((p) => p.held < p.needed);
  if (!behind) return undefined;
  const soak = behind.soakMs > 0 ? ` for ${formatSoak(behind.soakMs)}` : '';
  const message = `revision ${short(head)} waits for wave "${behind.name}": ${behind.held} of ${behind.hosts.length} host(s) converged at it${soak}, ${behind.needed} needed (${name})`;
  return { revision: head, reason: 'RolloutWaiting', message };
}

/** One wave's standing for a revision. */
export interface WaveProgress {
  /** The wave's name; `(no wave)` for the hosts no wave selects. */
  name: string;
  hosts: string[];
  /** Hosts that hold the revision (see holds) for the wave's soak. */
  held: number;
  /** How many must, before the next wave applies it (every host, for the last one). */
  needed: number;
  /** Hosts that failed it or rolled it back. */
  failed: string[];
  soakMs: number;
}

/**
 * Each wave's standing for `head` (the first `count` waves; the hosts no wave selects are wave
 * `waves.length`), from the hosts' documents. `later` says whether a commit comes after `head` on
 * the branch (a host may already hold a newer one).
 */
export async function waveProgress(
  waves: Wave[],
  rows: FleetRow[],
  head: string,
  now: Date,
  later: (revision: string) => Promise<boolean>,
  count = waves.length + 1,
): Promise<WaveProgress[]> {
  const groups = Array.from({ length: count }, () => [] as FleetRow[]);
  for (const r of rows) groups[waveOf(waves, labelsOf(r))]?.push(r);
  const out: WaveProgress[] = [];
  for (const [i, members] of groups.entries()) {
    const wave = waves[i];
    const soakMs = wave?.soakMs ?? 0;
    let held = 0;
    for (const r of members) if (await holds(r, head, soakMs, now, later)) held += 1;
    out.push({
      name: wave?.name ?? '(no wave)',
      hosts: members.map((r) => r.host),
      held,
      needed: wave ? needed(wave, members.length) : members.length,
      failed: members.filter((r) => failedOn(r, head)).map((r) => r.host),
      soakMs,
    });
  }
  return out;
}

/** How many of a wave's `size` hosts must hold a revision: a count (at most the wave), or a share rounded up. */
function needed(wave: Wave, size: number): number {
  const min = wave.minConverged;
  return 'count' in min ? Math.min(min.count, size) : Math.ceil((min.percent * size) / 100);
}

/** A host's labels as its document gives them (string values only: it may run another version). */
function labelsOf(r: FleetRow): Record<string, string> {
  const labels: unknown = r.doc.labels;
  if (typeof labels !== 'object' || labels === null) return {};
  return Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** Whether a host's document says it failed `head` or rolled it back (fields checked: it may run another version). */
function failedOn(r: FleetRow, head: string): boolean {
  const { failedRevisions, rollback } = r.doc as { failedRevisions?: unknown; rollback?: { from?: unknown } };
  return (Array.isArray(failedRevisions) && failedRevisions.includes(head)) || rollback?.from === head;
}

/**
 * Whether a host holds `head` (or a commit after it on the branch), converged and healthy, since
 * at least `soakMs` ago (its Ready condition has been True since then), with a report that is
 * not stale.
 */
async function holds(
  r: FleetRow,
  head: string,
  soakMs: number,
  now: Date,
  later: (revision: string) => Promise<boolean>,
): Promise<boolean> {
  if (r.stale || r.phase !== 'Converged' || !r.appliedRevision) return false;
  const conditions = Array.isArray(r.doc.conditions) ? r.doc.conditions : [];
  const ready = conditions.find((c) => c?.type === 'Ready');
  const healthy = conditions.find((c) => c?.type === 'Healthy');
  if (ready?.status !== 'True' || healthy?.status === 'False') return false;
  const since = Date.parse(ready.lastTransitionTime);
  if (!(now.getTime() - since >= soakMs)) return false;
  return r.appliedRevision === head || (await later(r.appliedRevision)); // a commit not fetched here: false
}

export function formatSoak(ms: number): string {
  if (ms % 3600_000 === 0) return `${ms / 3600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

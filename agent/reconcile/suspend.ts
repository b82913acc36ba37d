import { join } from 'node:path';
import { parse } from 'yaml';
import { readFile } from '../files.js';
import { writeJsonAtomic } from '../host/fs.js';
import { MAX_ROLLOUT_BYTES, ROLLOUT_FILE, selects } from '../manifest/rollout.js';
import { rolloutAt } from './rollout.js';
import { readRepoFile, suspendFile } from '../source/tree.js';
import type { ResourceResult } from './apply.js';
import { gateOf, type Verdict } from './choose.js';
import type { AgentContext } from './context.js';
import type { Plan } from './plan.js';
import { short, type RunRecord } from './record.js';

/** Why a host applies nothing: a local `steward suspend`, or hosts/<host>/suspend.yaml in Git. */
export interface Suspension {
  /** Where it comes from: `stateDir/suspend.json` or the repository path. */
  source: string;
  reason: string;
  /** `pin: <commit>` in the suspend file: the host enforces that commit instead of the head. */
  pin?: string;
}

/** The local suspension's file, written by `steward suspend`, removed by `steward resume`. */
export const localSuspendFile = (stateDir: string): string => join(stateDir, 'suspend.json');

const MAX_REASON = 500;
/** A suspend file is a few lines; a larger one is not parsed (it would be parsed every poll). */
const MAX_FILE = 64 * 1024;

/** A reason as the status and `steward status` print it: one line, no control characters, capped. */
function cleanReason(text: string): string {
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f\s]+/g, ' ')
    .trim()
    .slice(0, MAX_REASON);
}

/** `steward suspend --reason TEXT`: written atomically; the daemon reads it at its next run. */
export async function suspendLocally(stateDir: string, reason: string, now: Date): Promise<void> {
  await writeJsonAtomic(localSuspendFile(stateDir), { reason: cleanReason(reason), since: now.toISOString() });
}

/**
 * Whether this run is suspended, and by what. The local file wins; then the suspend file of
 * `revision` (the head when it passed the gates, such as its signature, else the applied one:
 * an unsigned commit cannot suspend a host any more than it can change one). A suspend file that
 * cannot be read or has no reason still suspends (it says an operator wanted the host held) and
 * says why in a warning.
 */
export async function suspensionOf(
  ctx: AgentContext,
  run: RunRecord,
  revision: string | null,
): Promise<Suspension | undefined> {
  const local = localSuspendFile(ctx.config.stateDir);
  let text: string | undefined;
  try {
    text = await readFile(local, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      run.warn(`${local} cannot be read (${code ?? (err as Error).message}); the host stays suspended`);
      return { source: local, reason: `${local} cannot be read` };
    }
  }
  if (text !== undefined) return { source: local, ...holdIn(run, local, () => JSON.parse(text) as unknown, false) };
  if (!revision) return undefined;
  return (await hostSuspension(ctx, run, revision)) ?? (await rolloutSuspension(ctx, run, revision));
}

/** A file of `revision`, or undefined when it has none; one over `max` bytes is a warning and a suspension. */
async function controlFile(
  ctx: AgentContext,
  run: RunRecord,
  revision: string,
  path: string,
  max: number,
): Promise<{ text: string } | { held: Suspension } | undefined> {
  let body: Buffer;
  try {
    body = await readRepoFile(ctx.source.objects, revision, path);
  } catch {
    return undefined; // no such file at that revision
  }
  if (body.length <= max) return { text: body.toString('utf8') };
  return { held: tooLarge(run, path, body.length, max) };
}

function tooLarge(run: RunRecord, path: string, size: number, max: number): Suspension {
  run.warn(`${path} is ${size} bytes, more than ${max}; it is not read, and the host stays suspended`);
  return { source: path, reason: `${path} is too large to read` };
}

/** hosts/<host>/suspend.yaml at `revision`. */
async function hostSuspension(ctx: AgentContext, run: RunRecord, revision: string): Promise<Suspension | undefined> {
  const path = suspendFile(ctx.config.host);
  const file = await controlFile(ctx, run, revision, path, MAX_FILE);
  if (!file || 'held' in file) return file?.held;
  return {
    source: path,
    ...holdIn(run, path, () => parse(file.text, { logLevel: 'error', uniqueKeys: true }) as unknown, true),
  };
}

/**
 * rollout.yaml at `revision`: the first `suspend:` entry whose selector matches this host's
 * labels holds it (with a pin, at that commit). A file with problems holds every host until it is
 * fixed, as a broken suspend file does (its waves are rollout.ts's).
 */
async function rolloutSuspension(ctx: AgentContext, run: RunRecord, revision: string): Promise<Suspension | undefined> {
  const read = await rolloutAt(ctx, revision);
  if (!read) return undefined;
  if ('tooLarge' in read) return tooLarge(run, ROLLOUT_FILE, read.tooLarge, MAX_ROLLOUT_BYTES);
  const { rollout } = read;
  if (rollout.problems.length > 0) {
    const more = rollout.problems.length > 3 ? ` (and ${rollout.problems.length - 3} more)` : '';
    run.warn(
      `${ROLLOUT_FILE} is not valid: ${rollout.problems.slice(0, 3).join('; ')}${more}; every host is held until it is fixed (steward validate checks it)`,
    );
    return { source: ROLLOUT_FILE, reason: `${ROLLOUT_FILE} is not valid` };
  }
  const entry = rollout.suspend.find((e) => selects(e.selector, ctx.config.labels));
  if (entry) return { source: entry.at, ...holdIn(run, entry.at, () => entry, true) };
  return undefined;
}

const FULL_OID = /^[0-9a-f]{40}$/;

function holdIn(run: RunRecord, file: string, read: () => unknown, pins: boolean): { reason: string; pin?: string } {
  let doc: unknown;
  try {
    doc = read();
  } catch (err) {
    run.warn(`${file} cannot be parsed (${(err as Error).message.split('\n')[0]}); the host stays suspended`);
    return { reason: `${file} cannot be parsed` };
  }
  const { reason, pin } = (doc ?? {}) as { reason?: unknown; pin?: unknown };
  let pinned: string | undefined;
  if (pin !== undefined && !pins) run.warn(`${file}: "pin" is read only from hosts/<host>/suspend.yaml; ignored`);
  else if (pin !== undefined && (typeof pin !== 'string' || !FULL_OID.test(pin.trim().toLowerCase())))
    run.warn(
      `${file}: "pin" must be a full 40-hex commit id (git rev-parse <revision>), not ${JSON.stringify(pin).slice(0, 60)}${typeof pin === 'number' ? ' (YAML read it as a number: quote it)' : ''}; the host is suspended instead`,
    );
  else if (pin !== undefined) pinned = (pin as string).trim().toLowerCase();
  let why = 'no reason given';
  if (typeof reason === 'string' && cleanReason(reason) !== '') why = cleanReason(reason);
  else run.warn(`${file} has no "reason" (a non-empty string); the host stays ${pinned ? 'pinned' : 'suspended'}`);
  return pinned ? { reason: why, pin: pinned } : { reason: why };
}

/** What following a pin gave: the revision to enforce in the head's place and its gate, or the suspension it fell back to. */
export type Followed =
  | { held: Suspension; pinned?: undefined }
  | { held?: undefined; pinned: { head: string; gated: Exclude<Verdict, 'invalid'> } };

/**
 * A pin holds the host at a commit while the branch moves: that commit is enforced, drift is
 * corrected, health is judged, as for a head. It must be the head or below it on the branch (a
 * pin cannot bring in a commit from elsewhere) and pass the head's gates (its signature, with
 * source.verify), but not the ancestry one: pinning back is what a pin is for. A pin that cannot
 * be followed suspends the host, with a warning saying why.
 */
export async function followPin(ctx: AgentContext, run: RunRecord, base: string, held: Suspension): Promise<Followed> {
  const pin = held.pin!;
  const { branch } = ctx.config.source;
  let related: boolean | 'unknown';
  try {
    related = await ctx.source.isDescendant(branch, base, pin);
  } catch (err) {
    related = 'unknown';
    run.warn(`${held.source}: cannot look for the pinned commit ${short(pin)}: ${(err as Error).message}`);
  }
  if (related !== true) {
    const why =
      related === false
        ? `is not on branch "${branch}" at or below ${short(base)}`
        : 'was not found within 1000 commits';
    run.warn(`${held.source}: the pinned commit ${short(pin)} ${why}; the host is suspended instead`);
    return { held: { source: held.source, reason: held.reason } };
  }
  run.outcome.pinned = {
    source: held.source,
    reason: held.reason,
    revision: pin,
    head: run.outcome.desiredRevision ?? base,
  };
  run.outcome.desiredRevision = pin;
  return { pinned: { head: pin, gated: await gateOf(ctx, run, pin, { pinned: true }) } };
}

/**
 * What a suspended run reports for its plan: each change it holds back, as a skipped resource
 * that names what it would have done (drift included: seen, not corrected).
 */
export function heldResults(plan: Plan, held: Suspension): Map<string, ResourceResult> {
  const out = new Map<string, ResourceResult>();
  for (const id of plan.unchanged)
    out.set(id, { id, action: 'none', status: 'Ready', message: 'up to date', drift: false });
  for (const c of plan.changes)
    out.set(c.id, {
      id: c.id,
      action: c.action,
      status: 'Skipped',
      message: `suspended (${held.source}): would ${c.action}${c.reasons.length > 0 ? `: ${c.reasons.join('; ')}` : ''}`,
      drift: c.drift,
    });
  return out;
}

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { writeJsonAtomic } from '../host/fs.js';
import { readRepoFile, suspendFile } from '../source/tree.js';
import type { ResourceResult } from './apply.js';
import type { AgentContext } from './context.js';
import type { Plan } from './plan.js';
import type { RunRecord } from './record.js';

/** Why a host applies nothing: a local `steward suspend`, or hosts/<host>/suspend.yaml in Git. */
export interface Suspension {
  /** Where it comes from: `stateDir/suspend.json` or the repository path. */
  source: string;
  reason: string;
}

/** The local suspension's file, written by `steward suspend`, removed by `steward resume`. */
export const localSuspendFile = (stateDir: string): string => join(stateDir, 'suspend.json');

const MAX_REASON = 500;

/** `steward suspend --reason TEXT`: written atomically; the daemon reads it at its next run. */
export async function suspendLocally(stateDir: string, reason: string, now: Date): Promise<void> {
  await writeJsonAtomic(localSuspendFile(stateDir), { reason: reason.slice(0, MAX_REASON), since: now.toISOString() });
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
  if (text !== undefined) return { source: local, reason: reasonIn(run, local, () => JSON.parse(text) as unknown) };
  if (!revision) return undefined;
  const path = suspendFile(ctx.config.host);
  let body: Buffer;
  try {
    body = await readRepoFile(ctx.source.objects, revision, path);
  } catch {
    return undefined; // no such file at that revision: not suspended from Git
  }
  return { source: path, reason: reasonIn(run, path, () => parse(body.toString('utf8')) as unknown) };
}

function reasonIn(run: RunRecord, file: string, read: () => unknown): string {
  let doc: unknown;
  try {
    doc = read();
  } catch (err) {
    run.warn(`${file} cannot be parsed (${(err as Error).message.split('\n')[0]}); the host stays suspended`);
    return `${file} cannot be parsed`;
  }
  const { reason, pin } = (doc ?? {}) as { reason?: unknown; pin?: unknown };
  if (pin !== undefined)
    run.warn(`${file}: "pin" is not supported by this agent version; the host is suspended instead`);
  if (typeof reason === 'string' && reason.trim() !== '') return reason.trim().slice(0, MAX_REASON);
  run.warn(`${file} has no "reason" (a non-empty string); the host stays suspended`);
  return 'no reason given';
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

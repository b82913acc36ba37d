import { parse } from 'yaml';

/** `rollout.yaml` at the root of the fleet repository (PRODUCT.md §9): not a manifest. */
export const ROLLOUT_FILE = 'rollout.yaml';

/** A rollout file is a list of selectors; a larger one is not parsed (it would be parsed every poll). */
export const MAX_ROLLOUT_BYTES = 256 * 1024;

/** One entry of `suspend:`: the hosts whose labels match `selector` are held, for `reason`. */
export interface SuspendEntry {
  /** Where it is, for messages: `rollout.yaml suspend[2]`. */
  at: string;
  selector: Record<string, string>;
  /** As written; the reader of the hold checks it (suspend.ts), as for hosts/<host>/suspend.yaml. */
  reason: unknown;
  pin?: unknown;
}

export interface Rollout {
  suspend: SuspendEntry[];
  /** Whether the file has `waves:` (staged rollouts: not implemented by this agent version yet). */
  waves: boolean;
  /** What is wrong with the file, each naming the field: `suspend[1].selector: ...`. */
  problems: string[];
}

const KEYS = new Set(['suspend', 'waves']);
const ENTRY_KEYS = new Set(['selector', 'reason', 'pin']);

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads rollout.yaml's text: its suspend entries, whether it has waves, and its problems. */
export function readRollout(text: string): Rollout {
  const out: Rollout = { suspend: [], waves: false, problems: [] };
  let doc: unknown;
  try {
    doc = parse(text, { logLevel: 'error', uniqueKeys: true, strict: true });
  } catch (err) {
    out.problems.push(`cannot be parsed: ${(err as Error).message.split('\n')[0]}`);
    return out;
  }
  if (doc === null || doc === undefined) return out;
  if (!isMap(doc)) return { ...out, problems: ['must be a mapping with "suspend" and "waves"'] };
  for (const key of Object.keys(doc)) if (!KEYS.has(key)) out.problems.push(`${key}: unknown field`);
  out.waves = doc.waves !== undefined && doc.waves !== null;
  const list = doc.suspend ?? [];
  if (!Array.isArray(list)) out.problems.push('suspend: must be a list of { selector, reason }');
  else list.forEach((entry, i) => readEntry(entry, `suspend[${i}]`, out));
  return out;
}

function readEntry(entry: unknown, at: string, out: Rollout): void {
  if (!isMap(entry)) {
    out.problems.push(`${at}: must be a mapping { selector, reason }`);
    return;
  }
  for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) out.problems.push(`${at}.${key}: unknown field`);
  const { selector } = entry;
  if (!isMap(selector)) {
    out.problems.push(`${at}.selector: must be a mapping of label: value ({} selects every host)`);
    return;
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(selector)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') labels[k] = String(v);
    else out.problems.push(`${at}.selector.${k}: must be a label value (a string), not ${JSON.stringify(v)}`);
  }
  if (typeof entry.reason !== 'string' || entry.reason.trim() === '')
    out.problems.push(`${at}.reason: must be a non-empty string`);
  out.suspend.push({ at: `${ROLLOUT_FILE} ${at}`, selector: labels, reason: entry.reason, pin: entry.pin });
}

/** Whether a host with `labels` is selected by `selector` (every key has that value). */
export function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

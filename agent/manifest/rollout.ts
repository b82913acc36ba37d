import { parse } from 'yaml';
import { parseDuration } from '../duration.js';

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

/** One wave of a staged rollout: the hosts `selector` matches that no earlier wave took. */
export interface Wave {
  name: string;
  selector: Record<string, string>;
  /** How many of its hosts must hold a revision before the next wave applies it. */
  minConverged: { count: number } | { percent: number };
  /** How long they must have held it. */
  soakMs: number;
}

export interface Rollout {
  suspend: SuspendEntry[];
  /** In order; hosts no wave selects come after the last. */
  waves: Wave[];
  /** What is wrong with the file, each naming the field: `suspend[1].selector: ...`. */
  problems: string[];
}

const KEYS = new Set(['suspend', 'waves']);
const ENTRY_KEYS = new Set(['selector', 'reason', 'pin']);
const WAVE_KEYS = new Set(['name', 'selector', 'minConverged', 'soak']);

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads rollout.yaml's text: its suspend entries, whether it has waves, and its problems. */
export function readRollout(text: string): Rollout {
  const out: Rollout = { suspend: [], waves: [], problems: [] };
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
  const list = doc.suspend ?? [];
  if (!Array.isArray(list)) out.problems.push('suspend: must be a list of { selector, reason }');
  else list.forEach((entry, i) => readEntry(entry, `suspend[${i}]`, out));
  const waves = doc.waves ?? [];
  if (!Array.isArray(waves)) out.problems.push('waves: must be a list of { name, selector, minConverged, soak }');
  else {
    waves.forEach((wave, i) => readWave(wave, `waves[${i}]`, out));
    const names = waves.map((w) => (isMap(w) ? w.name : undefined));
    names.forEach((n, i) => {
      if (typeof n === 'string' && names.indexOf(n) < i)
        out.problems.push(`waves[${i}].name: "${n}" names an earlier wave too`);
    });
  }
  return out;
}

/** A selector as written: label values; a problem for anything else. */
function readSelector(selector: unknown, at: string, out: Rollout): Record<string, string> | undefined {
  if (!isMap(selector)) {
    out.problems.push(`${at}.selector: must be a mapping of label: value ({} selects every host)`);
    return undefined;
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(selector)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') labels[k] = String(v);
    else out.problems.push(`${at}.selector.${k}: must be a label value (a string), not ${JSON.stringify(v)}`);
  }
  return labels;
}

const DURATION = /^([0-9]+(ms|s|m|h))+$/;

function readWave(wave: unknown, at: string, out: Rollout): void {
  if (!isMap(wave)) {
    out.problems.push(`${at}: must be a mapping { name, selector, minConverged, soak }`);
    return;
  }
  for (const key of Object.keys(wave)) if (!WAVE_KEYS.has(key)) out.problems.push(`${at}.${key}: unknown field`);
  const { name, minConverged = '100%', soak = '0s' } = wave;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name))
    out.problems.push(`${at}.name: must be a name (letters, digits, '.', '_', '-')`);
  const selector = readSelector(wave.selector, at, out);
  const min = readMinConverged(minConverged);
  if (!min)
    out.problems.push(
      `${at}.minConverged: must be a count (2) or a percentage ("50%"), not ${JSON.stringify(minConverged)}`,
    );
  if (typeof soak !== 'string' || !DURATION.test(soak) || parseDuration(soak) > MAX_SOAK_MS)
    out.problems.push(`${at}.soak: must be a duration such as 10m or 1h30m, at most 168h`);
  if (selector && min && typeof name === 'string' && typeof soak === 'string' && DURATION.test(soak))
    out.waves.push({ name, selector, minConverged: min, soakMs: parseDuration(soak) });
}

const MAX_SOAK_MS = 168 * 3600_000;

function readMinConverged(v: unknown): Wave['minConverged'] | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return { count: v };
  const m = typeof v === 'string' ? /^([0-9]{1,3})%$/.exec(v) : null;
  if (m && Number(m[1]) <= 100) return { percent: Number(m[1]) };
  return undefined;
}

/** The wave a host with `labels` is in: the first that selects it, else the one after the last. */
export function waveOf(waves: Wave[], labels: Record<string, string>): number {
  const i = waves.findIndex((w) => selects(w.selector, labels));
  return i === -1 ? waves.length : i;
}

function readEntry(entry: unknown, at: string, out: Rollout): void {
  if (!isMap(entry)) {
    out.problems.push(`${at}: must be a mapping { selector, reason }`);
    return;
  }
  for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) out.problems.push(`${at}.${key}: unknown field`);
  const labels = readSelector(entry.selector, at, out);
  if (!labels) return;
  if (typeof entry.reason !== 'string' || entry.reason.trim() === '')
    out.problems.push(`${at}.reason: must be a non-empty string`);
  out.suspend.push({ at: `${ROLLOUT_FILE} ${at}`, selector: labels, reason: entry.reason, pin: entry.pin });
}

/** Whether a host with `labels` is selected by `selector` (every key has that value). */
export function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

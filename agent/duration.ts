const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "1h30m" -> 5_400_000. The schema has already checked the form; throws on anything else. */
export function parseDuration(text: string): number {
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const m = /^(\d+)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`not a duration: ${JSON.stringify(text)}`);
    total += Number(m[1]) * UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** 5_400_000 -> "1h30m"; used in messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let s = Math.round(ms / 1000);
  for (const [unit, size] of [
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join('');
}

const SIZES: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** "256MiB" -> 268_435_456. The schema has already checked the form. */
export function parseSize(text: string): number {
  const m = /^(\d+)(KiB|MiB|GiB)$/.exec(text);
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)}`);
  return Number(m[1]) * SIZES[m[2]!]!;
}

/**
 * The schemas' `durationRange: { min, max }` check (compiled into the validators): true when
 * `text` lies within the bounds, or is not a duration at all (the pattern reports that one).
 */
export function durationInRange(text: string, min: string, max: string): boolean {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    return true;
  }
  return ms >= parseDuration(min) && ms <= parseDuration(max);
}

/**
 * Milliseconds on the monotonic clock, for elapsed time and deadlines (wall time is `Date`).
 * The same clock as `performance.now()`, which loads node's 11 perf_hooks modules on first use
 * (0.4 MiB of RSS for the process's life, bench/README.md).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

import cron from 'node-cron';

/** `source.window`: new revisions are applied only while it is open (README "Change windows"). */
export interface ChangeWindow {
  /** The cron expression of the moments it opens. */
  schedule: string;
  durationMs: number;
  /** An IANA zone; the host's own when the config gives none. */
  timezone: string;
}

/** Whether a window is open at a moment, and when that changes. */
export type WindowState = { open: true; closesAt: Date } | { open: false; opensAt: Date };

interface Matcher {
  getNextMatch(after: Date): Date;
}

/**
 * node-cron's own matcher for an expression in a zone: the same cron dialect source.schedule
 * uses, walked day by day (no minute-by-minute search). Its `timeMatcher` is not in the typings
 * of 4.6.0; test/config/window.test.ts fails if an upgrade takes it away. One per expression and
 * zone: each created task stays in node-cron's registry.
 */
const matchers = new Map<string, Matcher>();

function matcherOf(schedule: string, timezone: string): Matcher {
  const key = `${timezone} ${schedule}`;
  let m = matchers.get(key);
  if (!m) {
    const task = cron.createTask(schedule, () => undefined, { timezone }) as unknown as { timeMatcher?: Matcher };
    if (typeof task.timeMatcher?.getNextMatch !== 'function')
      throw new Error('node-cron no longer exposes its time matcher; source.window cannot be evaluated');
    m = task.timeMatcher;
    matchers.set(key, m);
  }
  return m;
}

/**
 * The window at `now`: open when it opened less than `durationMs` ago (it then closes at that
 * opening plus the duration), else closed until its next opening. Pure but for the clock given.
 */
export function windowAt(w: ChangeWindow, now: Date): WindowState {
  const m = matcherOf(w.schedule, w.timezone);
  // The first opening after (now - duration): at or before now means the window is open.
  const opened = m.getNextMatch(new Date(now.getTime() - w.durationMs));
  if (opened.getTime() <= now.getTime()) return { open: true, closesAt: new Date(opened.getTime() + w.durationMs) };
  return { open: false, opensAt: opened };
}

/** The zone a window is read in when the config names none: this host's. */
export const hostTimezone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

/** Why `timezone` is not a zone this runtime knows, or undefined when it is. */
export function timezoneProblem(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return undefined;
  } catch {
    return `unknown time zone ${JSON.stringify(timezone)} (an IANA name such as Europe/Berlin or UTC)`;
  }
}

/** A moment as the window's zone reads it: `2026-12-07 02:00 Europe/Berlin`. */
export function localTime(at: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')} ${timezone}`;
}

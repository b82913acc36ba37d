import t from 'tap';
import { parseConfig } from '../../agent/config/load.js';
import { hostTimezone, localTime, windowAt, type ChangeWindow } from '../../agent/config/window.js';
import { configErrors } from '../helpers/config.js';

const F = '/etc/steward/agent.yaml';
const config = (window: string) => `source:\n  url: http://git.example/fleet.git\n  window: ${window}\n`;
const errorsOf = (text: string): string[] => configErrors(text, F);

t.test('a window opens at each time of its schedule and stays open for its duration, in its zone', async (t) => {
  const nightly: ChangeWindow = { schedule: '0 2 * * *', durationMs: 2 * 3600_000, timezone: 'Europe/Berlin' };
  const at = (iso: string) => windowAt(nightly, new Date(iso));
  // Berlin is UTC+1 in December: the window is 01:00-03:00 UTC.
  t.same(at('2026-12-07T00:59:59Z'), { open: false, opensAt: new Date('2026-12-07T01:00:00Z') }, 'before it opens');
  t.same(at('2026-12-07T01:00:00Z'), { open: true, closesAt: new Date('2026-12-07T03:00:00Z') }, 'as it opens');
  t.same(
    at('2026-12-07T02:59:59Z'),
    { open: true, closesAt: new Date('2026-12-07T03:00:00Z') },
    'just before it closes',
  );
  t.same(
    at('2026-12-07T03:00:00Z'),
    { open: false, opensAt: new Date('2026-12-08T01:00:00Z') },
    'closed: the next night',
  );
  // In July (UTC+2) the same window is 00:00-02:00 UTC.
  t.same(at('2026-07-01T00:30:00Z'), { open: true, closesAt: new Date('2026-07-01T02:00:00Z') }, 'summer time');
  t.equal(localTime(new Date('2026-12-08T01:00:00Z'), 'Europe/Berlin'), '2026-12-08 02:00 Europe/Berlin');

  const friday: ChangeWindow = { schedule: '30 22 * * 5', durationMs: 90 * 60_000, timezone: 'UTC' };
  t.same(
    windowAt(friday, new Date('2026-12-06T12:00:00Z')), // a Sunday
    { open: false, opensAt: new Date('2026-12-11T22:30:00Z') },
    'a weekly window: the next Friday',
  );
  t.same(windowAt(friday, new Date('2026-12-11T23:59:00Z')), {
    open: true,
    closesAt: new Date('2026-12-12T00:00:00Z'),
  });
  const yearly: ChangeWindow = { schedule: '0 0 1 1 *', durationMs: 60_000, timezone: 'UTC' };
  t.same(windowAt(yearly, new Date('2026-01-01T00:01:00Z')), {
    open: false,
    opensAt: new Date('2027-01-01T00:00:00Z'),
  });
});

t.test('source.window in the config: defaults, and errors naming the field', async (t) => {
  const ok = parseConfig(config('{ schedule: "0 2 * * *", duration: 2h, timezone: Europe/Berlin }'), F, {
    hostname: 'box-1',
  });
  t.same(ok.source.window, { schedule: '0 2 * * *', durationMs: 7_200_000, timezone: 'Europe/Berlin' });
  const local = parseConfig(config('{ schedule: "0 2 * * *", duration: 30m }'), F, { hostname: 'box-1' });
  t.equal(local.source.window?.timezone, hostTimezone(), "the host's zone when none is given");
  t.equal(
    parseConfig('source:\n  url: http://git.example/fleet.git\n', F, { hostname: 'box-1' }).source.window,
    undefined,
    'no window: always open',
  );

  t.match(errorsOf(config('{ schedule: "0 25 * * *", duration: 2h }')), [
    /^\/etc\/steward\/agent\.yaml:3: \/source\/window\/schedule: invalid cron expression: .*hour.* \[E_CONFIG_INVALID\]$/,
  ]);
  t.same(errorsOf(config('{ schedule: "0 2 * * *", duration: 2h, timezone: Mars/Olympus }')), [
    `${F}:3: /source/window/timezone: unknown time zone "Mars/Olympus" (an IANA name such as Europe/Berlin or UTC) [E_CONFIG_INVALID]`,
  ]);
  t.match(errorsOf(config('{ schedule: "0 2 * * *", duration: 10s }')), [/\/source\/window\/duration: .*1m/]);
  t.match(errorsOf(config('{ schedule: "0 2 * * *" }')), [
    /\/source\/window\/duration: missing required field "duration"/,
  ]);
});

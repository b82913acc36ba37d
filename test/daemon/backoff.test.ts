import t from 'tap';
import { StewardError } from '../../agent/errors.js';
import { nextRunDelayMs } from '../../agent/daemon/loop.js';
import type { ResourceResult } from '../../agent/reconcile/apply.js';
import type { RunReport } from '../../agent/reconcile/run.js';

// The retry class of a run's errors decides when the daemon runs again (interval 60 s).
const report = (...results: Array<Partial<ResourceResult>>): RunReport => ({
  outcome: {
    startedAt: new Date(0),
    durationMs: 1,
    desiredRevision: null,
    appliedRevision: null,
    lastGoodRevision: null,
    phase: 'Failed',
    bundleErrors: [],
    notes: [],
    results: new Map(
      results.map((r, i) => [
        `Container/c${i}`,
        { id: `Container/c${i}`, action: 'create', status: 'Ready', message: '', drift: false, ...r },
      ]),
    ),
  },
});
const pull = new StewardError('E_IMAGE_PULL', 'cannot pull image x');
const taken = new StewardError('E_CONTAINER_NAME_TAKEN', 'name taken');

const rows: Array<[string, RunReport | undefined, number, number]> = [
  ['no run yet', undefined, 0, 60_000],
  ['everything Ready', report({}), 0, 60_000],
  ['a transient failure, first run in a row', report({ status: 'Failed', error: pull }), 1, 5_000],
  ['second in a row', report({ status: 'Failed', error: pull }), 2, 10_000],
  ['fourth in a row', report({ status: 'Failed', error: pull }), 4, 40_000],
  ['fifth in a row: capped at the interval', report({ status: 'Failed', error: pull }), 5, 60_000],
  ['a stalled failure waits the interval', report({ status: 'Failed', error: taken }), 1, 60_000],
  ['a skip behind a transient failure counts', report({ status: 'Skipped', error: pull }), 1, 5_000],
  [
    'stalled beside transient: sooner',
    report({ status: 'Failed', error: taken }, { status: 'Failed', error: pull }),
    1,
    5_000,
  ],
];

t.test('the next run comes sooner after a transient failure, never later than the interval', async (t) => {
  for (const [name, r, streak, want] of rows) t.equal(nextRunDelayMs(r, 60_000, streak), want, name);
  t.equal(
    nextRunDelayMs(report({ status: 'Failed', error: pull }), 3_000, 1),
    3_000,
    'a short interval stays as it is',
  );
});

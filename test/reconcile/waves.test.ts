import t from 'tap';
import { readRollout, waveOf } from '../../agent/manifest/rollout.js';
import { noticesOf } from '../../agent/reconcile/notices.js';
import type { RunRecord } from '../../agent/reconcile/record.js';
import { waveProgress } from '../../agent/reconcile/rollout.js';
import { StewardError } from '../../agent/errors.js';
import type { FleetRow } from '../../agent/status/fleet.js';
import type { HostStatus } from '../../agent/types/host-status.js';
import { convergedDoc } from '../helpers/status.js';

const HEAD = 'a'.repeat(40);
const OLD = 'b'.repeat(40);
const now = new Date('2026-12-06T12:00:00Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);
const { waves, problems } = readRollout(`waves:
  - { name: canary, selector: { ring: canary }, minConverged: "50%", soak: 10m }
  - { name: early, selector: { ring: early }, minConverged: 1 }
`);

/** A host's row as readFleet gives it, from a document that `edit` may make odd. */
function row(
  host: string,
  ring: string | undefined,
  at: string,
  since: Date,
  edit: (d: HostStatus) => void = () => {},
) {
  const doc = convergedDoc(host, at, since, { labels: ring ? { ring } : {} });
  edit(doc);
  return {
    host,
    phase: doc.phase,
    appliedRevision: doc.appliedRevision,
    updatedAt: doc.updatedAt,
    ageSeconds: 0,
    stale: false,
    failing: [],
    doc,
  } as FleetRow;
}

t.test('waves: membership, counts, soak, and documents of other versions that lack fields', async (t) => {
  t.same(problems, []);
  t.equal(waveOf(waves, { ring: 'canary', site: 'x' }), 0);
  t.equal(waveOf(waves, { ring: 'early' }), 1);
  t.equal(waveOf(waves, {}), 2, 'no wave: the last');
  const rows = [
    row('c1', 'canary', HEAD, minutesAgo(11)),
    row('c2', 'canary', HEAD, minutesAgo(2)), // not soaked yet
    row('c3', 'canary', OLD, minutesAgo(60)), // not at the head
    row('c4', 'canary', HEAD, minutesAgo(30), (d) => {
      d.phase = 'Degraded';
      d.failedRevisions = [HEAD];
    }),
    // Another version's or a hostile document: fields missing or of the wrong type count as "not
    // holding it", never as an error.
    row('e1', 'early', HEAD, minutesAgo(5), (d) => {
      (d as unknown as { conditions: unknown }).conditions = 'none';
    }),
    row('e2', 'early', HEAD, minutesAgo(5), (d) => {
      (d as unknown as { failedRevisions: unknown }).failedRevisions = { [HEAD]: true };
      (d as unknown as { rollback: unknown }).rollback = 'yes';
    }),
    row('e3', undefined, HEAD, minutesAgo(5), (d) => {
      (d as unknown as { labels: unknown }).labels = { ring: 7 };
    }),
  ];
  const later = async (rev: string) => rev === 'c'.repeat(40);
  const progress = await waveProgress(waves, rows, HEAD, now, later);
  t.match(progress, [
    { name: 'canary', hosts: ['c1', 'c2', 'c3', 'c4'], held: 1, needed: 2, failed: ['c4'] },
    { name: 'early', hosts: ['e1', 'e2'], held: 1, needed: 1, failed: [] },
    { name: '(no wave)', hosts: ['e3'], held: 1, needed: 1, failed: [] },
  ]);
  const two = await waveProgress(waves, rows, HEAD, now, later, 1);
  t.equal(two.length, 1, 'only the waves asked for are counted');
  const newer = [row('c5', 'canary', 'c'.repeat(40), minutesAgo(20))];
  t.match(await waveProgress(waves, newer, HEAD, now, later), [{ held: 1 }], 'a later commit of the branch counts');
});

const run = (outcome: Record<string, unknown>) =>
  ({ outcome: { results: new Map(), ...outcome } }) as unknown as RunRecord;

t.test('notices: a refusal and a halt are told once, the most important first', async (t) => {
  const doc = convergedDoc('h1', HEAD, now);
  const source = {
    type: 'SourceReady' as const,
    status: 'False' as const,
    reason: 'E_GIT_UNSIGNED',
    message: 'not signed',
  };
  doc.phase = 'Failed';
  doc.conditions = [
    { ...source, lastTransitionTime: now.toISOString() },
    { type: 'Ready', status: 'False', reason: 'Failed', message: 'x', lastTransitionTime: now.toISOString() },
  ];
  const refused = run({ sourceError: new StewardError('E_GIT_UNSIGNED', 'not signed') });
  t.match(
    noticesOf(refused, doc, { phase: 'Converged' }).map((n) => n.event),
    ['revisionRefused', 'phaseChanged'],
  );
  t.same(
    noticesOf(refused, doc, { phase: 'Failed', source: doc.conditions[0]! }),
    [],
    'the same refusal on the next poll is no news',
  );
  const halted = run({ waiting: { revision: HEAD, reason: 'RolloutHalted', message: 'halted' } });
  doc.phase = 'Progressing';
  doc.conditions[1] = { ...doc.conditions[1]!, reason: 'RolloutHalted', message: 'halted; 1 resource(s)' };
  t.match(noticesOf(halted, doc, { phase: 'Converged' }), [
    { event: 'rolloutHalted', revision: HEAD, reason: 'RolloutHalted', message: 'halted', previousPhase: 'Converged' },
    { event: 'phaseChanged', phase: 'Progressing' },
  ]);
  t.same(noticesOf(halted, doc, { phase: 'Progressing', ready: doc.conditions[1] }), [], 'told once');
});

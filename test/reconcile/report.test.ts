import t from 'tap';
import { buildStatus, fingerprint, type RunOutcome } from '../../agent/reconcile/report.js';
import { commitMessage } from '../../agent/status/publish.js';
import { emptyState } from '../../agent/reconcile/state.js';
import { checkSchema } from '../../agent/manifest/schema.js';
import { StewardError } from '../../agent/errors.js';
import type { ResourceResult } from '../../agent/reconcile/apply.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const id = {
  host: 'edge-1',
  labels: { site: 'berlin' },
  agentVersion: '0.1.0',
  heartbeatSeconds: 900,
  facts: { os: 'Debian 12', arch: 'x64', cpus: 2, memoryBytes: 1 << 30, dockerVersion: '20.10.24' },
};
const res = (over: Partial<ResourceResult>): [string, ResourceResult] => [
  over.id ?? 'Container/web',
  { id: 'Container/web', action: 'none', status: 'Ready', message: 'up to date', drift: false, ...over },
];
const run = (over: Partial<RunOutcome>): RunOutcome => ({
  startedAt: new Date('2026-11-26T10:00:00Z'),
  durationMs: 1234.5,
  desiredRevision: A,
  appliedRevision: A,
  lastGoodRevision: A,
  phase: 'Converged',
  bundleErrors: [],
  results: new Map([res({})]),
  notes: [],
  ...over,
});

t.test('a status document for each phase validates against the schema', async (t) => {
  const phases: Array<[string, RunOutcome]> = [
    ['Converged', run({})],
    ['Progressing', run({ phase: 'Progressing' })],
    [
      'Failed',
      run({
        phase: 'Failed',
        results: new Map([
          res({
            action: 'create',
            status: 'Failed',
            message: 'cannot pull image x',
            error: new StewardError('E_IMAGE_PULL', 'cannot pull image x', { resource: 'Container/web' }),
          }),
        ]),
      }),
    ],
    [
      'Invalid',
      run({
        phase: 'Invalid',
        desiredRevision: B,
        bundleErrors: [
          new StewardError('E_MANIFEST_INVALID', 'must be a string', {
            file: 'hosts/a/w.yaml',
            line: 7,
            pointer: '/spec/env/A',
          }),
        ],
      }),
    ],
    [
      'Degraded',
      run({
        phase: 'Degraded',
        desiredRevision: B,
        rollback: { from: B, to: A, at: '2026-11-26T10:00:05.000Z', reason: 'Container/web: not healthy within 60s' },
        results: new Map([res({ health: 'Unhealthy', status: 'Failed' })]),
      }),
    ],
    [
      'Offline',
      run({
        phase: 'Offline',
        sourceError: new StewardError('E_GIT_UNREACHABLE', 'cannot reach https://git.example.com/f.git: ECONNREFUSED'),
      }),
    ],
    ['Suspended', run({ phase: 'Suspended', results: new Map() })],
  ];
  for (const [phase, outcome] of phases) {
    const doc = buildStatus(
      id,
      outcome,
      { ...emptyState(), failedRevisions: phase === 'Degraded' ? [B] : [] },
      new Date('2026-11-26T10:00:06Z'),
    );
    t.same(checkSchema('host-status', doc), [], `${phase} validates`);
    t.equal(doc.phase, phase);
  }
  const failed = buildStatus(id, phases[2]![1], emptyState(), new Date());
  t.same(
    failed.errors,
    [{ code: 'E_IMAGE_PULL', message: 'cannot pull image x', retry: 'transient', resource: 'Container/web' }],
    'each error says whether the next run may fix it on its own',
  );
  t.equal(commitMessage(failed), `steward(edge-1): Failed at aaaaaaa — 0 changed, 1 failed\n`);
  const invalid = buildStatus(id, phases[3]![1], emptyState(), new Date());
  t.same(invalid.errors, [
    {
      code: 'E_MANIFEST_INVALID',
      message: 'must be a string',
      retry: 'stalled',
      file: 'hosts/a/w.yaml',
      line: 7,
      pointer: '/spec/env/A',
    },
  ]);
});

t.test('conditions move lastTransitionTime only when status, reason or message change', async (t) => {
  const s = emptyState();
  const first = buildStatus(id, run({}), s, new Date('2026-11-26T10:00:00Z'));
  s.conditions = first.conditions;
  const second = buildStatus(
    id,
    run({ startedAt: new Date('2026-11-26T10:01:00Z'), durationMs: 99 }),
    s,
    new Date('2026-11-26T10:01:00Z'),
  );
  t.same(
    second.conditions.map((c) => c.lastTransitionTime),
    first.conditions.map((c) => c.lastTransitionTime),
    'nothing changed: same times',
  );
  t.equal(fingerprint(second), fingerprint(first), 'and the same fingerprint: no commit needed');
  s.conditions = second.conditions;
  const third = buildStatus(
    id,
    run({ phase: 'Failed', results: new Map([res({ status: 'Failed', message: 'x' })]) }),
    s,
    new Date('2026-11-26T10:02:00Z'),
  );
  const ready = third.conditions.find((c) => c.type === 'Ready')!;
  t.equal(ready.lastTransitionTime, '2026-11-26T10:02:00.000Z', 'Ready changed: its time moves');
  t.equal(
    third.conditions.find((c) => c.type === 'SourceReady')!.lastTransitionTime,
    first.conditions.find((c) => c.type === 'SourceReady')!.lastTransitionTime,
    'SourceReady did not',
  );
  t.not(fingerprint(third), fingerprint(second));
});

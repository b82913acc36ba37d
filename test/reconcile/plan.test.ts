import t from 'tap';
import { createDocker } from '../../agent/host/docker.js';
import { makePlan } from '../../agent/reconcile/plan.js';
import { ContainerDriver, type ObservedContainer } from '../../agent/resources/container.js';
import { Fingerprint } from '../../agent/host/fingerprint.js';
import { fieldHashes, specHash } from '../../agent/resources/container-spec.js';
import type { Bundle, DesiredContainer } from '../../agent/manifest/bundle.js';
import type { ContainerSpec } from '../../agent/types/container.js';

// diff is pure: the Docker client is never called by the planner.
const FP = new Fingerprint(Buffer.alloc(32, 1));
const driver = new ContainerDriver(createDocker('/nonexistent'), 'h1', '/nonexistent', FP);
const drivers = { Container: driver };
const REV = 'b'.repeat(40);

const want = (name: string, spec: ContainerSpec): DesiredContainer => ({
  id: `Container/${name}`,
  kind: 'Container',
  name,
  spec,
  file: 'hosts/h1/x.yaml',
  line: 1,
});
const seen = (d: DesiredContainer, over: Partial<ObservedContainer> = {}): ObservedContainer => ({
  containerId: `id-${d.name}`,
  name: d.name,
  owned: true,
  state: 'running',
  hash: specHash(d.spec, FP),
  fields: fieldHashes(d.spec, FP),
  image: d.spec.image,
  imageId: 'sha256:1111',
  desiredImageId: 'sha256:1111',
  extras: [],
  ...over,
});
const plan = (
  resources: DesiredContainer[],
  observed: ObservedContainer[],
  inventory: Record<string, { hash: string }> = {},
  allowEmptyPrune = false,
) =>
  makePlan(
    { revision: REV, resources } as Bundle,
    { Container: new Map(observed.map((o) => [`Container/${o.name}`, o])) },
    Object.fromEntries(
      Object.entries(inventory).map(([id, e]) => [id, { kind: 'Container' as const, hash: e.hash, revision: REV }]),
    ),
    drivers,
    { allowEmptyPrune },
  );
const summary = (p: ReturnType<typeof plan>) =>
  p.changes.map(
    (c) =>
      `${c.action} ${c.id}: ${c.reasons.join('; ')}${c.drift ? ' [drift]' : ''}${c.blocked ? ` [${c.blocked.code}]` : ''}`,
  );

const web = want('web', { image: 'local/busybox:1', env: { A: '1' } });

t.test('each situation and the change it plans, with its reason', async (t) => {
  const table: Array<[string, ReturnType<typeof plan>, string[]]> = [
    ['new', plan([web], []), ['create Container/web: container does not exist']],
    [
      'removed by hand',
      plan([web], [], { 'Container/web': { hash: specHash(web.spec, FP) } }),
      ['create Container/web: container was removed outside Steward [drift]'],
    ],
    [
      'name taken',
      plan([web], [seen(web, { owned: false })]),
      ['create Container/web: name is taken by a container Steward does not own [E_CONTAINER_NAME_TAKEN]'],
    ],
    [
      'image and env changed',
      plan([want('web', { image: 'local/busybox:2', env: { A: '2' } })], [seen(web)]),
      ['recreate Container/web: image changed (local/busybox:1 -> local/busybox:2); env changed'],
    ],
    [
      'port added',
      plan([want('web', { ...web.spec, ports: ['8080:80'] })], [seen(web)]),
      ['recreate Container/web: ports added'],
    ],
    [
      'stopped by hand',
      plan([web], [seen(web, { state: 'exited' })], { 'Container/web': { hash: specHash(web.spec, FP) } }),
      ['start Container/web: container is exited [drift]'],
    ],
    [
      'tag moved to a new image',
      plan([web], [seen(web, { desiredImageId: 'sha256:2222222222222222' })]),
      ['recreate Container/web: image local/busybox:1 now resolves to 222222222222 (was 1111)'],
    ],
    [
      'duplicates after a crash',
      plan([web], [seen(web, { extras: ['id-2'] })]),
      ['recreate Container/web: 1 duplicate container(s) for this resource'],
    ],
    [
      'left Git',
      plan([web], [seen(web), seen(want('old', { image: 'x' }))]),
      ['delete Container/old: no longer in Git'],
    ],
    ['up to date', plan([web], [seen(web)]), []],
  ];
  for (const [name, p, expected] of table) t.same(summary(p), expected, name);
});

t.test('an empty bundle prunes nothing unless allowed', async (t) => {
  const held = plan([], [seen(web)]);
  t.same(held.changes, []);
  t.same(held.notes, [
    'the bundle is empty: pruning 1 owned resource(s) is held back (set prune.allowEmpty: true to allow it)',
  ]);
  t.same(summary(plan([], [seen(web)], {}, true)), ['delete Container/web: no longer in Git']);
});

t.test('restartOn: a trigger that changes restarts what names it, in order', async (t) => {
  const db = want('db', { image: 'local/busybox:1' });
  const app = want('app', { image: 'local/busybox:1', restartOn: ['Container/db'] });
  const changedDb = want('db', { image: 'local/busybox:2' });
  const p = plan([changedDb, app], [seen(db), seen(app)]);
  t.same(summary(p), [
    'recreate Container/db: image changed (local/busybox:1 -> local/busybox:2)',
    'restart Container/app: Container/db changes in this run (restartOn)',
  ]);
  t.same(summary(plan([db, app], [seen(db), seen(app)])), [], 'nothing restarts when nothing changed');
});

import t from 'tap';
import { createHash } from 'node:crypto';
import { Fingerprint } from '../../agent/host/fingerprint.js';
import { makePlan } from '../../agent/reconcile/plan.js';
import { FileDriver, type ObservedFile } from '../../agent/resources/file.js';
import type { InventoryEntry } from '../../agent/resources/driver.js';
import type { Bundle, DesiredFile, DesiredService } from '../../agent/manifest/bundle.js';
import type { FileSpec } from '../../agent/types/file.js';
import type { ServiceSpec } from '../../agent/types/service.js';
import { ServiceDriver, type ObservedService } from '../../agent/resources/service.js';
import { Systemd, type UnitState } from '../../agent/host/systemd.js';

// The File and Service rows of the planner table (test/reconcile/plan.test.ts has the Container rows): diff is pure, nothing here touches the disk.
const FP = new Fingerprint(Buffer.alloc(32, 1));
const driver = new FileDriver('/nonexistent/state', { roots: [], forbidden: [] }, FP);
const REV = 'c'.repeat(40);
const sha = (s: string) => FP.of(s, 64);

const want = (spec: Partial<FileSpec> & { content?: string }, name = 'motd'): DesiredFile => ({
  id: `File/${name}`,
  kind: 'File',
  name,
  spec: { path: '/etc/motd', ...spec } as FileSpec,
  ...(spec.content !== undefined ? { data: Buffer.from(spec.content) } : {}),
  file: 'hosts/h1/f.yaml',
  line: 1,
});
const seen = (content: string | undefined, over: Partial<ObservedFile> = {}): ObservedFile =>
  content === undefined
    ? { path: '/etc/motd', type: 'absent', ...over }
    : { path: '/etc/motd', type: 'file', fingerprint: sha(content), mode: 0o644, uid: 0, gid: 0, ...over };
const owned = (d: DesiredFile, over: Partial<InventoryEntry> = {}): InventoryEntry => ({
  kind: 'File',
  hash: driver.hash(d),
  revision: REV,
  path: d.spec.path,
  ...over,
});
const plan = (
  resources: DesiredFile[],
  observed: ObservedFile | undefined,
  inventory: Record<string, InventoryEntry> = {},
) =>
  makePlan(
    { revision: REV, resources } as Bundle,
    { File: new Map(observed ? [['File/motd', observed]] : []) },
    inventory,
    { File: driver },
    { allowEmptyPrune: true },
  );
const summary = (p: {
  changes: Array<{ action: string; id: string; reasons: string[]; drift: boolean; blocked?: { code: string } }>;
}) =>
  p.changes.map(
    (c) =>
      `${c.action} ${c.id}: ${c.reasons.join('; ')}${c.drift ? ' [drift]' : ''}${c.blocked ? ` [${c.blocked.code}]` : ''}`,
  );

const hello = want({ content: 'hello\n' });
const h = (s: string) => sha(s).slice(0, 12);

t.test('File: each situation and the change it plans, with its reason', async (t) => {
  const table: Array<[string, ReturnType<typeof plan>, string[]]> = [
    ['new', plan([hello], seen(undefined)), [`create File/motd: file does not exist (fingerprint ${h('hello\n')})`]],
    ['in place', plan([hello], seen('hello\n'), { 'File/motd': owned(hello) }), []],
    [
      'removed by hand',
      plan([hello], seen(undefined), { 'File/motd': owned(hello) }),
      [`create File/motd: file was removed outside Steward (fingerprint ${h('hello\n')}) [drift]`],
    ],
    [
      'edited by hand',
      plan([hello], seen('tampered\n'), { 'File/motd': owned(hello) }),
      [
        `update File/motd: content was changed outside Steward (fingerprint ${h('tampered\n')} -> ${h('hello\n')}) [drift]`,
      ],
    ],
    [
      'changed in Git',
      plan([want({ content: 'bye\n' })], seen('hello\n'), { 'File/motd': owned(hello) }),
      [`update File/motd: content changed (fingerprint ${h('hello\n')} -> ${h('bye\n')})`],
    ],
    [
      'a file Steward did not write',
      plan([hello], seen('theirs\n')),
      [
        `update File/motd: replaces a file Steward did not write (the original is kept) (fingerprint ${h('theirs\n')} -> ${h('hello\n')})`,
      ],
    ],
    [
      'mode changed by hand',
      plan([hello], seen('hello\n', { mode: 0o666 }), { 'File/motd': owned(hello) }),
      ['update File/motd: mode 0666 -> 0644 [drift]'],
    ],
    [
      'owner unknown on this host',
      plan(
        [want({ content: 'hello\n', owner: 'nobody-here' })],
        seen('hello\n', { want: { error: 'user "nobody-here" does not exist' } }),
      ),
      ['update File/motd: owner or group unknown [E_FILE_OWNER]'],
    ],
    [
      'a symlink among the parents',
      plan([hello], seen(undefined, { unsafe: '/etc is a symlink' })),
      ['update File/motd: the path is not safe to write [E_FILE_UNSAFE]'],
    ],
    [
      'path changed in Git',
      plan([want({ content: 'hello\n', path: '/etc/motd' })], seen(undefined), {
        'File/motd': owned(hello, { path: '/etc/old-motd', backup: '/nonexistent/state/backup/x' }),
      }),
      [
        `create File/motd: path changed from /etc/old-motd: that file is deleted and the file it replaced restored; file does not exist (fingerprint ${h('hello\n')})`,
      ],
    ],
    [
      'ensure: absent, owned',
      plan([want({ ensure: 'absent' })], seen('hello\n'), { 'File/motd': owned(hello) }),
      ['delete File/motd: ensure: absent'],
    ],
    [
      'ensure: absent, not written by Steward',
      plan([want({ ensure: 'absent' })], seen('theirs\n')),
      ['delete File/motd: ensure: absent [E_FILE_NOT_OWNED]'],
    ],
    [
      'no longer in Git',
      plan([], seen('hello\n'), { 'File/motd': owned(hello) }),
      ['delete File/motd: no longer in Git'],
    ],
    [
      'no longer in Git, already gone',
      plan([], seen(undefined), { 'File/motd': owned(hello) }),
      ['delete File/motd: no longer in Git (already gone)'],
    ],
  ];
  for (const [name, p, expected] of table) t.same(summary(p), expected, name);
});

// The Service rows: a Systemd client that is never called (diff is pure).
const services = new ServiceDriver(new Systemd('/nonexistent/units', '/nonexistent/systemctl'), '/nonexistent/state');
const unit = (spec: Partial<ServiceSpec> & { content?: string }): DesiredService => ({
  id: 'Service/app',
  kind: 'Service',
  name: 'app',
  spec: { unit: 'app.service', ...spec } as ServiceSpec,
  ...(spec.content !== undefined ? { data: Buffer.from(spec.content) } : {}),
  file: 'hosts/h1/s.yaml',
  line: 1,
});
const state = (over: Partial<UnitState> = {}): UnitState => ({
  id: 'app.service',
  loadState: 'loaded',
  activeState: 'active',
  subState: 'running',
  unitFileState: 'enabled',
  startedAt: '1',
  result: 'success',
  ...over,
});
const observedUnit = (file: string | undefined, over: Partial<UnitState> = {}): ObservedService => ({
  unit: 'app.service',
  state: state(over),
  file:
    file === undefined
      ? { present: false }
      : { present: true, sha256: createHash('sha256').update(file).digest('hex') },
});
const planService = (resources: DesiredService[], o: ObservedService | undefined, record?: Partial<InventoryEntry>) =>
  makePlan(
    { revision: REV, resources } as Bundle,
    { Service: new Map(o ? [['Service/app', o]] : []) },
    record
      ? {
          'Service/app': {
            kind: 'Service',
            hash: record.hash ?? services.hash(resources[0]!),
            revision: REV,
            ...record,
          },
        }
      : {},
    { Service: services },
    { allowEmptyPrune: true },
  );

const UNIT = '[Service]\nExecStart=/bin/true\n';
const written = unit({ content: UNIT, enabled: true, state: 'running' });

t.test('Service: each situation and the change it plans, with its reason', async (t) => {
  const owns = { path: '/nonexistent/units/app.service', unit: 'app.service' };
  const table: Array<[string, ReturnType<typeof plan>, string[]]> = [
    [
      'new unit file',
      planService(
        [written],
        observedUnit(undefined, { loadState: 'not-found', activeState: 'inactive', unitFileState: '' }),
      ),
      ['create Service/app: unit file does not exist; unit is inactive'],
    ],
    ['in place', planService([written], observedUnit(UNIT), owns), []],
    [
      'unit file edited by hand',
      planService([written], observedUnit('[Service]\nExecStart=/bin/evil\n'), owns),
      ['update Service/app: unit file was changed outside Steward [drift]'],
    ],
    [
      'stopped by hand',
      planService([written], observedUnit(UNIT, { activeState: 'inactive', result: 'exit-code' }), owns),
      ['start Service/app: unit is inactive (exit-code) [drift]'],
    ],
    [
      'disabled by hand',
      planService([written], observedUnit(UNIT, { unitFileState: 'disabled' }), owns),
      ['update Service/app: unit is disabled [drift]'],
    ],
    [
      'a unit Steward did not write, to be stopped',
      planService([unit({ state: 'stopped' })], observedUnit(undefined)),
      ['update Service/app: unit is active'],
    ],
    [
      'a unit that does not exist and no content',
      planService(
        [unit({ state: 'running' })],
        observedUnit(undefined, { loadState: 'not-found', activeState: 'inactive' }),
      ),
      ['update Service/app: unit does not exist [E_UNIT_NOT_FOUND]'],
    ],
    [
      'a unit file that replaces one Steward did not write',
      planService([written], observedUnit('[Service]\nExecStart=/bin/theirs\n')),
      ['update Service/app: replaces a unit file Steward did not write (the original is kept)'],
    ],
    [
      'unit renamed in Git: the new unit is written, the old one pruned',
      planService(
        [written],
        observedUnit(undefined, { loadState: 'not-found', activeState: 'inactive', unitFileState: '' }),
        {
          ...owns,
          unit: 'old.service',
          path: '/nonexistent/units/old.service',
        },
      ),
      [
        'create Service/app: unit changed from old.service: it is stopped, disabled and its unit file removed; unit file does not exist; unit is inactive',
      ],
    ],
    [
      'unit renamed in Git, the new unit file already in place: only the old one is pruned',
      planService([written], observedUnit(UNIT), {
        ...owns,
        unit: 'old.service',
        path: '/nonexistent/units/old.service',
      }),
      ['update Service/app: unit changed from old.service: it is stopped, disabled and its unit file removed'],
    ],
    [
      'written unit no longer in Git',
      planService([], observedUnit(UNIT), { ...owns, hash: 'x' }),
      ['delete Service/app: no longer in Git: stop, disable and remove its unit file'],
    ],
    [
      'managed unit no longer in Git',
      planService([], observedUnit(undefined), {
        unit: 'app.service',
        hash: 'x',
        original: { enabled: false, active: false },
      }),
      ['delete Service/app: no longer in Git: back to its state before Steward (disabled, stopped)'],
    ],
  ];
  for (const [name, p, expected] of table) t.same(summary(p), expected, name);
});

import t from 'tap';
import { merge, parseEntry, prunable, record, type Applied } from '../../agent/reconcile/inventory.js';
import type { ResourceResult } from '../../agent/reconcile/apply.js';
import type { DesiredFile } from '../../agent/manifest/kinds.js';
import type { InventoryEntry } from '../../agent/resources/driver.js';

// What Steward owns after each kind of result: the only things it may later change or delete.
const REV = 'b'.repeat(40);
const file = (path: string): DesiredFile => ({
  id: 'File/motd',
  kind: 'File',
  name: 'motd',
  spec: { path, content: 'x' },
  file: 'hosts/a/motd.yaml',
  line: 1,
});
const applied = (path: string, hash = 'h2'): Applied => ({
  desired: file(path),
  hash,
  claims: { path },
  revision: REV,
});
const result = (status: ResourceResult['status'], action: ResourceResult['action'], owned?: ResourceResult['owned']) =>
  ({ id: 'File/motd', action, status, message: '', drift: false, ...(owned ? { owned } : {}) }) as ResourceResult;
const prior: InventoryEntry = { kind: 'File', hash: 'h1', revision: 'a'.repeat(40), path: '/etc/motd', backup: 'b1' };

const rows: Array<
  [string, InventoryEntry | undefined, ResourceResult, Applied | undefined, InventoryEntry | undefined]
> = [
  [
    'created: owned at its hash, with what it claims',
    undefined,
    result('Ready', 'create'),
    applied('/etc/motd'),
    { kind: 'File', hash: 'h2', revision: REV, path: '/etc/motd' },
  ],
  [
    'created over a file that stood there: the backup is remembered',
    undefined,
    result('Ready', 'create', { backup: 'b9' }),
    applied('/etc/motd'),
    { kind: 'File', hash: 'h2', revision: REV, path: '/etc/motd', backup: 'b9' },
  ],
  [
    'updated in place: the backup of the original stays',
    prior,
    result('Ready', 'update'),
    applied('/etc/motd'),
    { kind: 'File', hash: 'h2', revision: REV, path: '/etc/motd', backup: 'b1' },
  ],
  [
    'moved to another path: the old backup does not follow it',
    prior,
    result('Ready', 'recreate'),
    applied('/etc/motd2'),
    { kind: 'File', hash: 'h2', revision: REV, path: '/etc/motd2' },
  ],
  [
    'unchanged: the revision moves on',
    prior,
    result('Ready', 'none'),
    applied('/etc/motd', 'h1'),
    { ...prior, revision: REV },
  ],
  ['pruned: no longer owned', prior, result('Pruned', 'delete'), undefined, undefined],
  ['a failed delete stays owned, to be retried', prior, result('Failed', 'delete'), undefined, prior],
  ['a failed update keeps what was applied before', prior, result('Failed', 'update'), applied('/etc/motd'), prior],
  ['skipped: as before', prior, result('Skipped', 'update'), applied('/etc/motd'), prior],
  ['a failed create owns nothing', undefined, result('Failed', 'create'), applied('/etc/motd'), undefined],
];

t.test('record: the entry after each kind of result', async (t) => {
  for (const [name, before, r, a, want] of rows) t.same(record(before, r, a), want, name);
});

t.test('prunable: owned, not declared, and of a kind observed this run', async (t) => {
  const inventory: Record<string, InventoryEntry> = {
    'File/old': { kind: 'File', hash: 'h', revision: REV, path: '/etc/old' },
    'File/kept': { kind: 'File', hash: 'h', revision: REV, path: '/etc/kept' },
    'Container/gone': { kind: 'Container', hash: 'h', revision: REV },
  };
  const desired = new Set(['File/kept']);
  t.same(
    prunable(inventory, { Container: ['Container/labelled'] }, desired, new Set()),
    [
      { id: 'Container/gone', kind: 'Container' },
      { id: 'Container/labelled', kind: 'Container' },
      { id: 'File/old', kind: 'File' },
    ],
    'remembered or seen with Steward’s labels, sorted by id',
  );
  t.same(
    prunable(inventory, { Container: ['Container/labelled'] }, desired, new Set(['Container'])),
    [{ id: 'File/old', kind: 'File' }],
    'an engine that could not be observed proves nothing about its containers',
  );
  t.same(prunable({}, {}, new Set(), new Set()), [], 'nothing owned, nothing pruned');
});

t.test('merge and parseEntry: what is read back from disk is checked, never trusted', async (t) => {
  const inv: Record<string, InventoryEntry> = { 'File/a': prior };
  const n = merge(inv, [
    { id: 'File/b', entry: { kind: 'File', hash: 'h', revision: REV, path: '/etc/b' } },
    { id: 'File/a' },
    { id: 'File/c', entry: { kind: 'Nope', hash: 'h', revision: REV } },
    { id: 'File/d', entry: { kind: 'File', hash: 1, revision: REV } },
    { entry: { kind: 'File', hash: 'h', revision: REV } },
    null,
    'text',
  ]);
  t.equal(n, 2, 'two changes applied');
  t.same(inv, { 'File/b': { kind: 'File', hash: 'h', revision: REV, path: '/etc/b' } });
  t.same(
    parseEntry({
      kind: 'Service',
      hash: 'h',
      revision: REV,
      unit: 'x.service',
      original: { enabled: 'yes' },
      extra: 1,
    }),
    { kind: 'Service', hash: 'h', revision: REV, unit: 'x.service' },
    'fields of the wrong type and unknown fields are dropped',
  );
  t.equal(parseEntry([]), undefined);
  t.equal(parseEntry({ kind: 'toString', hash: 'h', revision: REV }), undefined, 'only the registry’s kinds');
});

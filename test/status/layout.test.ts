import t from 'tap';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpClient } from '../../agent/source/http.js';
import { GitRepo } from '../../agent/source/repo.js';
import { hostBranch, readFleet } from '../../agent/status/fleet.js';
import { publishStatus } from '../../agent/status/publish.js';
import { memoryLogger } from '../helpers/agent.js';
import { createFleetRepo, gitOut, showFile, startGitServer } from '../helpers/git.js';
import { convergedDoc } from '../helpers/status.js';

// The per-host status layout against the real git http-backend, whose requests the test server
// counts: every host on its own branch, a report in one request once the host knows its branch,
// the fleet read in two, and a fleet still half on the shared branch of earlier versions.
const REV = 'd'.repeat(40);
const log = memoryLogger([]);
const server = await startGitServer();
t.teardown(() => server.stop());

const statusRepo = async (url: string) => {
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-layout-')), 'status.git'),
    url,
    headers: {},
    http: createHttpClient({ timeoutMs: 60_000 }),
  });
  await repo.init();
  return repo;
};
const counted = async <T>(fn: () => Promise<T>): Promise<{ value: T; requests: number }> => {
  const before = (await server.stats()).requests;
  const value = await fn();
  return { value, requests: (await server.stats()).requests - before };
};
const report = (repo: GitRepo, host: string, at: Date, durationMs = 1) =>
  publishStatus(repo, hostBranch('steward-status', host), convergedDoc(host, REV, at, { durationMs }), log, {
    own: true,
  });

t.test('50 hosts reporting at once: all land, none refused, 2 requests for a first report and 1 after', async (t) => {
  const fleet = await createFleetRepo(server, 'fifty');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const hosts = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => ({
      name: `edge-${String(i).padStart(2, '0')}`,
      repo: await statusRepo(server.url('fifty')),
    })),
  );
  for (let round = 1; round <= 3; round++) {
    const at = new Date(Date.UTC(2026, 11, 2, 12, round));
    const { value, requests } = await counted(() => Promise.all(hosts.map((h) => report(h.repo, h.name, at, round))));
    t.ok(
      value.every((r) => r.outcome === 'pushed' && r.attempts === 1),
      `round ${round}: every report pushed at the first attempt`,
    );
    t.equal(requests, round === 1 ? 100 : 50, `round ${round}: ${requests / 50} request(s) per report`);
  }
  const refs = (await gitOut(fleet.bare, 'for-each-ref', '--format=%(refname)', 'refs/heads/steward-status-by-host/'))
    .split('\n')
    .filter(Boolean);
  t.equal(refs.length, 50, 'one branch per host, under refs/heads/');
  for (const h of [hosts[0]!, hosts[49]!]) {
    const onBranch = JSON.parse(
      (await showFile(fleet.bare, hostBranch('steward-status', h.name), `hosts/${h.name}/status.json`))!,
    );
    t.equal(onBranch.lastRun.durationMs, 3, `${h.name}: its newest report`);
    t.equal(
      await gitOut(fleet.bare, 'log', '--format=%s', hostBranch('steward-status', h.name)),
      [3, 2, 1].map(() => `steward(${h.name}): Converged at ${REV.slice(0, 7)} — 0 changed, 0 failed`).join('\n'),
      `${h.name}: its own history is one git log away`,
    );
  }
  const reader = await statusRepo(server.url('fifty'));
  const read = await counted(() => readFleet(reader, 'steward-status', new Date(Date.UTC(2026, 11, 2, 12, 4))));
  t.equal(read.value.rows.length, 50, 'steward status sees every host');
  t.equal(read.requests, 2, 'the fleet in two requests: ls-refs and one fetch');
  // The same reader again after ten hosts reported: their tips are fetched, the other forty are
  // read from what the first read stored.
  const later = new Date(Date.UTC(2026, 11, 2, 12, 5));
  await Promise.all(hosts.slice(0, 10).map((h) => report(h.repo, h.name, later, 4)));
  const again = await counted(() => readFleet(reader, 'steward-status', later));
  t.equal(again.requests, 2, 'a second read: ls-refs and one fetch of the tips that moved');
  t.same(
    again.value.rows.map((r) => r.doc.lastRun?.durationMs),
    [...Array(10).fill(4), ...Array(40).fill(3)],
    'the ten new reports and the forty stored ones',
  );
  // A fleet read whose objects do not fit its memory budget reads them back from its store.
  const frugal = await readFleet(await statusRepo(server.url('fifty')), 'steward-status', later, { keepBytes: 1000 });
  t.same(
    frugal.rows.map((r) => r.doc.lastRun?.durationMs),
    again.value.rows.map((r) => r.doc.lastRun?.durationMs),
    'past the memory budget: the same fifty reports, from the store',
  );
  const one = await statusRepo(server.url('fifty'));
  const single = await counted(() => readFleet(one, 'steward-status', new Date(), { host: 'edge-07' }));
  t.same(
    single.value.rows.map((r) => r.host),
    ['edge-07'],
  );
  t.equal(single.requests, 2, '--host reads its branch alone, in two requests');
});

t.test('a state dir lost, a branch deleted: the next report rebuilds on what the server has', async (t) => {
  const fleet = await createFleetRepo(server, 'lost');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const first = await statusRepo(server.url('lost'));
  await report(first, 'kiosk-1', new Date('2026-12-02T10:00:00Z'));
  // A reinstall: a fresh store that does not know its branch.
  const fresh = await statusRepo(server.url('lost'));
  const r = await report(fresh, 'kiosk-1', new Date('2026-12-02T10:05:00Z'), 2);
  t.equal(r.outcome, 'pushed');
  t.equal(
    await gitOut(fleet.bare, 'rev-list', '--count', hostBranch('steward-status', 'kiosk-1')),
    '2',
    'on top of the old one',
  );
  // The old store still believes in its tip: refused once, rebuilt on the server's.
  const stale = await report(first, 'kiosk-1', new Date('2026-12-02T10:10:00Z'), 3);
  t.equal(stale.outcome, 'pushed');
  t.equal(stale.attempts, 2);
  await gitOut(fleet.bare, 'branch', '-D', hostBranch('steward-status', 'kiosk-1'));
  const again = await report(first, 'kiosk-1', new Date('2026-12-02T10:15:00Z'), 4);
  t.equal(again.outcome, 'pushed', 'a deleted branch is made again');
});

t.test('mixed versions: hosts still on the shared branch are read with the rest, the newer report wins', async (t) => {
  const fleet = await createFleetRepo(server, 'mixed');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const old = await statusRepo(server.url('mixed'));
  // What earlier versions write: every host's file on the one branch.
  for (const host of ['old-1', 'moving'])
    await publishStatus(old, 'steward-status', convergedDoc(host, REV, new Date('2026-12-02T09:00:00Z')), log);
  const moved = await statusRepo(server.url('mixed'));
  await report(moved, 'moving', new Date('2026-12-02T09:30:00Z'), 7);
  await report(moved, 'new-1', new Date('2026-12-02T09:30:00Z'));
  const reader = await statusRepo(server.url('mixed'));
  const now = new Date('2026-12-02T09:31:00Z');
  const { rows } = await readFleet(reader, 'steward-status', now);
  t.same(
    rows.map((r) => r.host),
    ['moving', 'new-1', 'old-1'],
  );
  t.equal(rows.find((r) => r.host === 'moving')!.doc.lastRun.durationMs, 7, 'its own branch, the newer report');
  t.same(
    (await readFleet(await statusRepo(server.url('mixed')), 'steward-status', now, { host: 'old-1' })).rows.map(
      (r) => r.host,
    ),
    ['old-1'],
  );
  // A host removed from the fleet (or renamed) stops reporting: marked stale, nothing else breaks.
  const later = await readFleet(reader, 'steward-status', new Date('2026-12-02T12:00:00Z'));
  t.ok(
    later.rows.every((r) => r.stale),
    'silent hosts are stale after 3 heartbeats',
  );
});

t.test('a host renamed: it reports on its new branch from its same store, the old name goes stale', async (t) => {
  const fleet = await createFleetRepo(server, 'renamed');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const till = await statusRepo(server.url('renamed'));
  const other = await statusRepo(server.url('renamed'));
  await report(till, 'till-3', new Date('2026-12-02T09:00:00Z'));
  await report(other, 'till-4', new Date('2026-12-02T09:00:00Z'));
  // Renamed in its config (hostname changed): the state dir and its status store stay.
  const first = await counted(() => report(till, 'till-03', new Date('2026-12-02T10:00:00Z')));
  t.equal(first.value.outcome, 'pushed');
  t.equal(first.requests, 2, 'a first report on the new branch: ls-refs and push');
  await report(other, 'till-4', new Date('2026-12-02T10:00:00Z'));
  const { rows } = await readFleet(
    await statusRepo(server.url('renamed')),
    'steward-status',
    new Date('2026-12-02T10:01:00Z'),
  );
  t.same(
    rows.map((r) => [r.host, r.stale]),
    [
      ['till-03', false],
      ['till-3', true],
      ['till-4', false],
    ],
    'the new name fresh, the old one stale, the other host untouched',
  );
  t.match(
    await gitOut(fleet.bare, 'log', '--format=%s', hostBranch('steward-status', 'till-3')),
    /^steward\(till-3\): Converged/,
    'the old branch keeps its history until the operator deletes it',
  );
});

t.test('history is bounded per host: past historyLimit its branch is squashed into one commit', async (t) => {
  const fleet = await createFleetRepo(server, 'bounded');
  await fleet.commit({ 'README.md': 'fleet\n' });
  const repo = await statusRepo(server.url('bounded'));
  const counts: number[] = [];
  for (let i = 1; i <= 14; i++) {
    const doc = convergedDoc('kiosk-9', REV, new Date(Date.UTC(2026, 11, 2, 8, i)), { durationMs: i });
    await publishStatus(repo, hostBranch('steward-status', 'kiosk-9'), doc, log, { own: true, historyLimit: 10 });
    counts.push(Number(await gitOut(fleet.bare, 'rev-list', '--count', hostBranch('steward-status', 'kiosk-9'))));
  }
  t.same(counts, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4], 'the 11th report starts the branch again');
  const onBranch = JSON.parse(
    (await showFile(fleet.bare, hostBranch('steward-status', 'kiosk-9'), 'hosts/kiosk-9/status.json'))!,
  );
  t.equal(onBranch.lastRun.durationMs, 14, 'no report lost');
});

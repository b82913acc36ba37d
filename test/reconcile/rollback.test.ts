import t from 'tap';
import { containerDoc, docker, makeAgent, type TestAgent } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';

const fx = fleetFixture(t);
const agent = (extra: string) => fx.agent({ extra });
const { statusOf } = fx;
/** Healthy only on image 1: its /VERSION holds 1. */
const probe = { exec: { command: ['grep', '-q', '1', '/VERSION'] }, interval: '200ms', timeout: '2s', deadline: '3s' };
const web = (a: TestAgent, image: string) => containerDoc(`web-${a.host}`, { image, probe });
const imageOf = async (a: TestAgent) => (await a.containers()).map((c) => c.Image);

t.test('an unhealthy new image is rolled back automatically and not retried until the branch moves', async (t) => {
  const a = await agent('rollback: auto\n');
  const good = await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: web(a, 'local/busybox:1') });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(r.status?.resources[`Container/web-${a.host}`]?.health, 'Healthy');

  const bad = await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: web(a, 'local/busybox:2') });
  const started = Date.now();
  r = await a.once();
  // The probe's deadline is 3 s; without it the run would wait health.timeout (60 s).
  t.ok(Date.now() - started < 45_000, 'the wait for health is bounded by the deadline');
  t.equal(r.outcome.phase, 'Degraded');
  t.same(await imageOf(a), ['local/busybox:1'], 'back on the good image');
  const s = await statusOf(a.host);
  t.equal(s.phase, 'Degraded');
  t.same(s.failedRevisions, [bad]);
  t.match(s.rollback, {
    from: bad,
    to: good,
    reason: new RegExp(`^Container/web-${a.host}: recreate done, but not healthy within 3s: probe: grep: exit 1$`),
  });
  t.equal(s.appliedRevision, good);
  t.equal(s.lastGoodRevision, good);
  t.equal(s.desiredRevision, bad);
  t.match(
    s.conditions.find((c) => c.type === 'Ready'),
    { status: 'False', reason: 'RolledBack' },
  );
  t.match(s.resources[`Container/web-${a.host}`], {
    action: 'recreate',
    message: /^rollback: recreate: image changed \(local\/busybox:2 -> local\/busybox:1\)/,
  });

  const id = (await a.containers())[0]!.Id;
  r = await a.once();
  t.equal(r.outcome.phase, 'Degraded', 'still degraded');
  t.equal((await a.containers())[0]!.Id, id, 'the failed revision is not tried again');
  t.match(r.status?.warnings, [
    `revision ${bad.slice(0, 7)} failed its health checks and was rolled back; it is not tried again until the branch moves`,
    `enforcing the last good revision ${good.slice(0, 7)} meanwhile`,
  ]);

  const fixed = await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: containerDoc(`web-${a.host}`, { image: 'local/busybox:2' }),
  });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged', 'the branch moved: the new head is tried');
  t.same(await imageOf(a), ['local/busybox:2']);
  t.equal((await statusOf(a.host)).lastGoodRevision, fixed);
});

t.test('rollback: off reports the failure and leaves the host as applied', async (t) => {
  const a = await agent('rollback: "off"\n');
  await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: web(a, 'local/busybox:1') });
  await a.once();
  const bad = await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: web(a, 'local/busybox:2') });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Failed');
  t.same(await imageOf(a), ['local/busybox:2'], 'stays as applied');
  t.match(r.outcome.results.get(`Container/web-${a.host}`), {
    status: 'Failed',
    health: 'Unhealthy',
    error: { code: 'E_HEALTH_TIMEOUT' },
  });
  const s = await statusOf(a.host);
  t.equal(s.appliedRevision, bad);
  t.equal(s.failedRevisions, undefined);
  t.match(
    s.conditions.find((c) => c.type === 'Healthy'),
    { status: 'False', reason: 'Unhealthy', message: `Container/web-${a.host}` },
  );
});

t.test('a hanging health check is ended by its timeout', async (t) => {
  const a = await agent('rollback: "off"\nhealth: { timeout: 2s }\n');
  await fx.fleet.commit({
    [`hosts/${a.host}/hang.yaml`]: containerDoc(`hang-${a.host}`, {
      image: 'local/busybox:1',
      probe: { exec: { command: ['sleep', '1000'] }, timeout: '500ms', interval: '200ms' },
    }),
    [`hosts/${a.host}/tcp.yaml`]: containerDoc(`tcp-${a.host}`, {
      image: 'local/busybox:1',
      probe: { tcp: { port: 1 }, timeout: '300ms', deadline: '1s' },
    }),
  });
  const started = Date.now();
  const r = await a.once();
  const took = Date.now() - started;
  // A hanging probe is `sleep 1000`: 60 s tells an ended run from a hung one on a slow machine too.
  t.ok(took < 60_000, `the run ended (${took} ms)`);
  t.match(r.outcome.results.get(`Container/hang-${a.host}`), {
    status: 'Failed',
    error: { code: 'E_HEALTH_TIMEOUT', message: 'not healthy within 2s: probe: sleep: no result within 500ms' },
  });
  t.match(r.outcome.results.get(`Container/tcp-${a.host}`), {
    status: 'Failed',
    error: { code: 'E_HEALTH_TIMEOUT', message: 'not healthy within 1s: probe: tcp 127.0.0.1:1: ECONNREFUSED' },
  });
  // Each exec probe attempt once left its engine connection open for 120 s (the daemon held one
  // socket per attempt); the agent runs in this process, so its open handles are ours to count.
  const handles = (process as unknown as { _getActiveHandles(): Array<{ _httpMessage?: { path?: string } }> })
    ._getActiveHandles()
    .filter((h) => h._httpMessage?.path?.startsWith('/exec/'));
  t.equal(handles.length, 0, 'no connection of an exec probe is left open');
});

t.test('an invalid head keeps the last good bundle enforced: drift is still corrected', async (t) => {
  const a = await agent('');
  const good = await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: containerDoc(`inv-${a.host}`, { image: 'local/busybox:1' }),
  });
  await a.once();
  const bad = await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: containerDoc(`inv-${a.host}`, { image: 'local/busybox:2', cpus: -1 }),
  });
  await docker.getContainer(`inv-${a.host}`).remove({ force: true });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Invalid');
  t.match(r.outcome.results.get(`Container/inv-${a.host}`), { action: 'create', status: 'Ready', drift: true });
  t.same(await imageOf(a), ['local/busybox:1'], 'the last good spec, not the invalid one');
  const s = await statusOf(a.host);
  t.same([s.desiredRevision, s.appliedRevision, s.lastGoodRevision], [bad, good, good]);
  t.match(s.errors, [{ code: 'E_MANIFEST_INVALID', pointer: '/spec/cpus' }]);
});

t.test('a rewritten history is refused unless allowed', async (t) => {
  const a = await agent('');
  const b = await makeAgent({ url: fx.server.url('fleet'), sourceExtra: '  allowHistoryRewrite: true' });
  fx.agents.push(b);
  const files = (image: string) => ({
    [`hosts/${a.host}/w.yaml`]: containerDoc(`hist-${a.host}`, { image }),
    [`hosts/${b.host}/w.yaml`]: containerDoc(`hist-${b.host}`, { image }),
  });
  await fx.fleet.commit(files('local/busybox:1'));
  await a.once();
  await b.once();
  // A force-push of a new history that does not contain the applied commit.
  const { writeFile, mkdir } = await import('node:fs/promises');
  const { join, dirname } = await import('node:path');
  await fx.fleet.git('checkout', '-q', '--orphan', `rewrite-${a.host}`);
  for (const [path, text] of Object.entries(files('local/busybox:2'))) {
    await mkdir(dirname(join(fx.fleet.work, path)), { recursive: true });
    await writeFile(join(fx.fleet.work, path), text);
  }
  await fx.fleet.git('add', '-A');
  await fx.fleet.git('commit', '-q', '-m', 'rewritten history');
  await fx.fleet.git('push', '-q', '-f', 'origin', 'HEAD:main');
  const rewritten = await fx.fleet.git('rev-parse', 'HEAD');
  t.teardown(() => fx.fleet.git('checkout', '-q', '-B', 'main'));
  const r = await a.once();
  t.match(r.outcome.sourceError, {
    code: 'E_GIT_HISTORY',
    message: new RegExp(
      `^the branch was rewritten: ${rewritten.slice(0, 7)} does not descend from the applied revision [0-9a-f]{7}; refused`,
    ),
  });
  t.equal(r.outcome.phase, 'Failed');
  t.same(await imageOf(a), ['local/busybox:1'], 'refused: the host keeps its state');
  t.equal((await a.once()).outcome.sourceError?.code, 'E_GIT_HISTORY', 'still refused next run');
  const rb = await b.once();
  t.equal(rb.outcome.phase, 'Converged');
  t.same(await imageOf(b), ['local/busybox:2'], 'allowed where the config says so');
});

t.test('a head many commits ahead is checked by deepening the shallow history', async (t) => {
  const a = await agent('');
  await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: containerDoc(`deep-${a.host}`, { image: 'local/busybox:1' }) });
  await a.once();
  for (let i = 0; i < 5; i++) await fx.fleet.commit({ [`hosts/${a.host}/n.txt`]: String(i) });
  await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: containerDoc(`deep-${a.host}`, { image: 'local/busybox:2' }) });
  const r = await a.once();
  t.equal(r.outcome.sourceError, undefined, 'a descendant: accepted');
  t.same(await imageOf(a), ['local/busybox:2']);
});

t.test('a bundle that became empty prunes nothing, and status says why', async (t) => {
  const a = await agent('');
  await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: containerDoc(`empty-${a.host}`, { image: 'local/busybox:1' }) });
  await a.once();
  await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: null });
  const r = await a.once();
  t.equal((await a.containers()).length, 1, 'nothing pruned');
  t.match(r.status?.warnings, [
    `not at ${r.outcome.desiredRevision?.slice(0, 7)}: hosts/${a.host}`,
    'the bundle is empty: pruning 1 owned resource(s) is held back (set prune.allowEmpty: true to allow it)',
  ]);
});

import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { containerDoc, docker, removeContainers, uid } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';
import { createFleetRepo, startGitServer } from '../helpers/git.js';
import { MAIN as main } from '../helpers/cli.js';

const exec = promisify(execFile);

const fx = fleetFixture(t);
const { agent, statusOf } = fx;
const byName = async (name: string) =>
  (await docker.listContainers({ all: true, filters: { name: [`^/${name}$`] } }))[0];

/** Docker events for one host's containers between two instants (a real record of mutating calls). */
async function eventsDuring(host: string, fn: () => Promise<unknown>): Promise<string[]> {
  // Events have whole-second timestamps: start the window on a fresh second so earlier calls fall outside.
  await new Promise((r) => setTimeout(r, 1050 - (Date.now() % 1000)));
  const since = Math.floor(Date.now() / 1000);
  await fn();
  await new Promise((r) => setTimeout(r, 1100));
  const until = Math.floor(Date.now() / 1000);
  const stream = await docker.getEvents({
    since,
    until,
    filters: { label: [`steward.host=${host}`], type: ['container'] },
  });
  const text = await new Promise<string>((resolve) => {
    let buf = '';
    stream.on('data', (d: Buffer) => (buf += d.toString()));
    stream.on('end', () => resolve(buf));
  });
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { Action: string }).Action);
}

t.test('a host converges to its own paths and the shared group, and reports on the status branch', async (t) => {
  const a = await agent({ url: fx.server.url('fleet'), paths: ['hosts/${host}', 'groups/${labels.role}'] });
  const b = `other-${uid()}`;
  const sha = await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: containerDoc(`web-${a.host}`, {
      image: 'local/busybox:1',
      env: { GREETING: 'hello' },
    }),
    [`hosts/${b}/web.yaml`]: containerDoc(`web-${b}`, { image: 'local/busybox:1' }),
    'groups/kiosk/agent.yaml': `apiVersion: steward/v1\nkind: Container\nmetadata: { name: sidecar-${a.host} }\nspec:\n  image: local/busybox:1\n  command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]\n`,
  });
  const { stdout, stderr } = await exec(process.execPath, [main, 'once', '--config', a.configFile]).catch((e) => e);
  t.equal((await exec(process.execPath, [main, 'version'])).stdout.startsWith('steward '), true);
  const lines = stdout
    .split('\n')
    .filter(Boolean)
    .map((l: string) => JSON.parse(l));
  t.equal(stderr, '', 'nothing on stderr');
  const creates = lines.filter((l: { action?: string }) => l.action === 'create');
  t.same(creates.map((l: { resource: string; reason: string }) => `${l.resource}: ${l.reason}`).sort(), [
    `Container/sidecar-${a.host}: container does not exist`,
    `Container/web-${a.host}: container does not exist`,
  ]);
  const mine = await a.containers();
  t.same(
    mine.map((c) => c.Names[0]).sort(),
    [`/sidecar-${a.host}`, `/web-${a.host}`],
    'exactly this host’s containers',
  );
  t.same(
    mine.map((c) => c.State),
    ['running', 'running'],
  );
  t.equal(await byName(`web-${b}`), undefined, 'the other host’s container is not started');
  const web = mine.find((c) => c.Names[0] === `/web-${a.host}`)!;
  t.match(web.Labels, {
    'steward.managed': 'true',
    'steward.host': a.host,
    'steward.id': `Container/web-${a.host}`,
    'steward.revision': sha,
  });
  const status = await statusOf(a.host);
  t.equal(status.appliedRevision, sha);
  t.equal(status.phase, 'Converged');
  t.same(status.labels, { site: 'test', role: 'kiosk' });
  t.equal(status.resources[`Container/web-${a.host}`]?.action, 'create');
  const log = await (
    await import('../helpers/git.js')
  ).gitOut(fx.fleet.bare, 'log', '-1', '--format=%an|%s', (await import('../helpers/git.js')).statusRef(a.host));
  t.equal(log, `${a.host}|steward(${a.host}): Converged at ${sha.slice(0, 7)} — 2 changed, 0 failed`);
  t.notMatch(JSON.stringify(status), /hello/, 'env values never reach the status');
});

t.test(
  'a change of image or env recreates that container only; a removed document prunes it; an unowned name is left alone',
  async (t) => {
    const a = await agent({ url: fx.server.url('fleet') });
    const dir = `hosts/${a.host}`;
    const [n1, n2, n3] = ['one', 'two', 'three'].map((n) => `${n}-${a.host}`) as [string, string, string];
    await fx.fleet.commit({
      [`${dir}/one.yaml`]: containerDoc(n1, { image: 'local/busybox:1', env: { V: '1' } }),
      [`${dir}/two.yaml`]: containerDoc(n2, { image: 'local/busybox:1' }),
      [`${dir}/three.yaml`]: containerDoc(n3, { image: 'local/busybox:1' }),
    });
    t.equal((await a.once()).outcome.phase, 'Converged');
    const before = Object.fromEntries((await a.containers()).map((c) => [c.Names[0]!.slice(1), c.Id]));

    await fx.fleet.commit({
      [`${dir}/one.yaml`]: containerDoc(n1, { image: 'local/busybox:1', env: { V: '2' } }),
      [`${dir}/two.yaml`]: containerDoc(n2, { image: 'local/busybox:2' }),
    });
    const r = await a.once();
    t.same(
      [...r.outcome.results.values()]
        .filter((x) => x.action !== 'none')
        .map((x) => `${x.id} ${x.action}: ${x.message}`)
        .sort(),
      [
        `Container/${n1} recreate: recreate: env changed`,
        `Container/${n2} recreate: recreate: image changed (local/busybox:1 -> local/busybox:2)`,
      ],
    );
    const after = Object.fromEntries((await a.containers()).map((c) => [c.Names[0]!.slice(1), c]));
    t.not(after[n1]!.Id, before[n1], 'env change recreated one');
    t.not(after[n2]!.Id, before[n2], 'image change recreated two');
    t.equal(after[n2]!.Image, 'local/busybox:2');
    t.equal(after[n3]!.Id, before[n3], 'three untouched');

    await fx.fleet.commit({ [`${dir}/three.yaml`]: null });
    const pruned = await a.once();
    t.equal(pruned.outcome.results.get(`Container/${n3}`)?.status, 'Pruned');
    t.equal(await byName(n3), undefined, 'three removed from the host');

    const squatter = `squat-${a.host}`;
    await docker.createContainer({
      name: squatter,
      Image: 'local/busybox:1',
      Cmd: ['sleep', '1'],
      Labels: { owner: 'someone-else' },
    });
    t.teardown(() => removeContainers(squatter));
    await fx.fleet.commit({ [`${dir}/squat.yaml`]: containerDoc(squatter, { image: 'local/busybox:2' }) });
    const taken = await a.once();
    t.equal(taken.outcome.phase, 'Failed');
    t.match(taken.outcome.results.get(`Container/${squatter}`), {
      status: 'Failed',
      error: { code: 'E_CONTAINER_NAME_TAKEN' },
    });
    const still = await byName(squatter);
    t.same(
      [still?.Image, still?.Labels.owner, still?.Labels['steward.managed']],
      ['local/busybox:1', 'someone-else', undefined],
      'the unowned container is untouched',
    );
    const status = await statusOf(a.host);
    t.match(status.resources[`Container/${squatter}`], {
      status: 'Failed',
      code: 'E_CONTAINER_NAME_TAKEN',
      message: `a container named "${squatter}" exists and was not created by Steward for this host; it is left alone`,
    });
    t.equal(status.resources[`Container/${n1}`]?.status, 'Ready', 'the rest still applies');
  },
);

t.test('an invalid commit changes nothing and says where; the next valid commit applies', async (t) => {
  const a = await agent({ url: fx.server.url('fleet') });
  const dir = `hosts/${a.host}`;
  const name = `app-${a.host}`;
  await fx.fleet.commit({ [`${dir}/app.yaml`]: containerDoc(name, { image: 'local/busybox:1' }) });
  await a.once();
  const id = (await byName(name))!.Id;
  const bad = await fx.fleet.commit({
    [`${dir}/app.yaml`]: containerDoc(name, { image: 'local/busybox:2' }),
    [`${dir}/broken.yaml`]: `apiVersion: steward/v1\nkind: Container\nmetadata: { name: broken }\nspec:\n  image: local/busybox:1\n  ports: ["eighty"]\n`,
  });
  const events = await eventsDuring(a.host, () => a.once());
  t.same(events, [], 'no container touched');
  t.equal((await byName(name))!.Id, id);
  const status = await statusOf(a.host);
  t.equal(status.phase, 'Invalid');
  t.equal(status.desiredRevision, bad);
  t.not(status.appliedRevision, bad);
  t.match(status.errors, [
    { code: 'E_MANIFEST_INVALID', file: `${dir}/broken.yaml`, line: 6, pointer: '/spec/ports/0' },
  ]);
  t.match(
    status.conditions.find((c) => c.type === 'Valid'),
    { status: 'False', reason: 'E_MANIFEST_INVALID' },
  );
  await fx.fleet.commit({ [`${dir}/broken.yaml`]: null });
  t.equal((await a.once()).outcome.phase, 'Converged');
  t.equal((await byName(name))!.Image, 'local/busybox:2', 'the valid commit applied');
});

t.test(
  'a container removed by hand is recreated next run and reported as drift; a no-change run calls nothing',
  async (t) => {
    const a = await agent({ url: fx.server.url('fleet') });
    const name = `drift-${a.host}`;
    await fx.fleet.commit({
      [`hosts/${a.host}/d.yaml`]: containerDoc(name, { image: 'local/busybox:1' }),
      [`hosts/${a.host}/e.yaml`]: containerDoc(`e-${a.host}`, { image: 'local/busybox:1' }),
    });
    await a.once();
    t.same(
      await eventsDuring(a.host, () => a.once()),
      [],
      'a run with nothing to change makes no create/start/remove call',
    );
    await docker.getContainer(name).remove({ force: true });
    const r = await a.once();
    t.match(r.outcome.results.get(`Container/${name}`), { action: 'create', status: 'Ready', drift: true });
    t.equal((await byName(name))?.State, 'running');
    const status = await statusOf(a.host);
    t.match(status.resources[`Container/${name}`], {
      driftCorrected: true,
      message: 'create: container was removed outside Steward',
    });
    t.equal(status.lastRun.counts.drift, 1);
    await docker.getContainer(name).stop({ t: 1 });
    const r2 = await a.once();
    t.match(r2.outcome.results.get(`Container/${name}`), {
      action: 'start',
      status: 'Ready',
      drift: true,
      message: 'start: container is exited',
    });
  },
);

t.test('an image that cannot be pulled fails its resource; the rest applies', async (t) => {
  const a = await agent({ url: fx.server.url('fleet') });
  await fx.fleet.commit({
    [`hosts/${a.host}/ok.yaml`]: containerDoc(`ok-${a.host}`, { image: 'local/busybox:1' }),
    [`hosts/${a.host}/nope.yaml`]: containerDoc(`nope-${a.host}`, { image: 'registry.invalid/nothing:1' }),
  });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Failed');
  t.match(r.outcome.results.get(`Container/nope-${a.host}`), {
    status: 'Failed',
    error: { code: 'E_IMAGE_PULL', message: /^cannot pull image registry.invalid\/nothing:1: / },
  });
  t.equal((await byName(`ok-${a.host}`))?.State, 'running');
  t.equal(await byName(`nope-${a.host}`), undefined);
  const { stdout } = await exec(process.execPath, [main, 'once', '--config', a.configFile]).catch((e) => e);
  t.ok(stdout.includes('E_IMAGE_PULL'));
  const code = await exec(process.execPath, [main, 'once', '--config', a.configFile]).then(
    () => 0,
    (e: { code: number }) => e.code,
  );
  t.equal(code, 1, 'exit code 1: a resource failed');
});

t.test('Git down: the run uses the last fetched commit and reports it; back up: the next run fetches', async (t) => {
  const own = await startGitServer();
  t.teardown(() => own.stop());
  const repo = await createFleetRepo(own, 'fleet');
  const a = await agent({ url: own.url('fleet') });
  const c1 = await repo.commit({
    [`hosts/${a.host}/a.yaml`]: containerDoc(`g-${a.host}`, { image: 'local/busybox:1' }),
  });
  await a.once();
  await own.stop();
  await docker.getContainer(`g-${a.host}`).remove({ force: true });
  const down = await a.once();
  t.equal(down.outcome.desiredRevision, c1);
  t.match(down.outcome.sourceError, { code: 'E_GIT_UNREACHABLE' });
  t.equal((await byName(`g-${a.host}`))?.State, 'running', 'drift corrected offline from the last fetched commit');
  t.equal(down.published, 'failed', 'the status push failed too, and the run went on');
  t.match(
    down.status?.conditions.find((c) => c.type === 'SourceReady'),
    { status: 'False', reason: 'E_GIT_UNREACHABLE' },
  );
  await own.start();
  // The server is left alone for one backoff period (at most one poll interval after a first failure).
  await new Promise((r) => setTimeout(r, 1100));
  const c2 = await repo.commit({
    [`hosts/${a.host}/a.yaml`]: containerDoc(`g-${a.host}`, { image: 'local/busybox:2' }),
  });
  const up = await a.once();
  t.equal(up.outcome.desiredRevision, c2);
  t.equal(up.outcome.sourceError, undefined);
  t.equal(up.published, 'pushed');
  t.equal((await byName(`g-${a.host}`))?.Image, 'local/busybox:2');
});

t.test('two agents pushing status at the same moment: both files end up on the branch', async (t) => {
  const [a, b] = await Promise.all([agent({ url: fx.server.url('fleet') }), agent({ url: fx.server.url('fleet') })]);
  await fx.fleet.commit({
    [`hosts/${a.host}/x.yaml`]: containerDoc(`x-${a.host}`, { image: 'local/busybox:1' }),
    [`hosts/${b.host}/x.yaml`]: containerDoc(`x-${b.host}`, { image: 'local/busybox:1' }),
  });
  const [ra, rb] = await Promise.all([a.once(), b.once()]);
  t.same([ra.published, rb.published], ['pushed', 'pushed']);
  t.equal((await statusOf(a.host)).phase, 'Converged');
  t.equal((await statusOf(b.host)).phase, 'Converged');
});

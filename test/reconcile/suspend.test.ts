import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, docker, fileDoc, type TestAgent } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';

const fx = fleetFixture(t);

async function setup(t: Test): Promise<{ a: TestAgent; root: string; conf: string; web: string }> {
  const root = await mkdtemp(join(tmpdir(), 'steward-suspend-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const a = await fx.agent({ extra: `files:\n  roots: [${root}]\n` });
  const conf = join(root, 'app.conf');
  const web = `web-${a.host}`;
  await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: containerDoc(web, { image: 'local/busybox:1' }),
    [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=1\n', 'conf'),
  });
  t.equal((await a.once()).outcome.phase, 'Converged');
  return { a, root, conf, web };
}

const running = async (name: string) => (await docker.getContainer(name).inspect()).State.Running;

t.test('steward suspend: nothing applied, drift reported and not corrected; resume converges', async (t) => {
  const { a, conf, web } = await setup(t);
  const applied = (await a.once()).outcome.appliedRevision;

  const s = await steward(['suspend', '--config', a.configFile, '--reason', 'disk swap, ticket 4711']);
  t.equal(s.code, 0, s.stderr);
  t.match(s.stdout, `suspended ${a.host}`);
  const bare = await steward(['suspend', '--config', a.configFile]);
  t.equal(bare.code, 2, 'a suspension without a reason is refused');
  t.match(bare.stderr, '--reason TEXT is required');

  // Drift by hand and a new revision: neither is acted on.
  await docker.getContainer(web).stop({ t: 0 });
  await writeFile(conf, 'edited by hand\n');
  const next = await fx.fleet.commit({ [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=2\n', 'conf') });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Suspended');
  t.equal(await running(web), false, 'the stopped container is left stopped');
  t.equal(await readFile(conf, 'utf8'), 'edited by hand\n', 'the edited file is left as it is');
  t.equal(r.outcome.appliedRevision, applied, 'the new revision is not applied');
  const doc = await fx.statusOf(a.host);
  t.equal(doc.phase, 'Suspended');
  t.equal(doc.desiredRevision, next);
  t.match(
    doc.conditions.find((c) => c.type === 'Ready'),
    {
      status: 'False',
      reason: 'Suspended',
      message: /^suspended by .*suspend\.json: disk swap, ticket 4711; 2 change\(s\) held, 1 of them drift$/,
    },
  );
  t.match(doc.resources[`Container/${web}`], {
    status: 'Skipped',
    action: 'start',
    message: /^suspended .*: would start/,
  });
  t.match(doc.resources[`File/conf`], { status: 'Skipped', message: /would update/ });
  t.equal(
    doc.lastRun.counts.drift,
    1,
    'the stopped container is counted as drift (the file is an update: its spec changed too)',
  );

  const resumed = await steward(['resume', '--config', a.configFile]);
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.stdout, `resumed ${a.host}`);
  t.equal((await a.once()).outcome.phase, 'Converged');
  t.equal(await running(web), true);
  t.equal(await readFile(conf, 'utf8'), 'v=2\n', 'the held revision is applied');
  const again = await steward(['resume', '--config', a.configFile]);
  t.match(again.stdout, 'was not suspended locally');
});

t.test('hosts/<host>/suspend.yaml suspends from Git, is no manifest, and its removal resumes', async (t) => {
  const { a, conf, web } = await setup(t);
  const held = await fx.fleet.commit({
    [`hosts/${a.host}/suspend.yaml`]: 'reason: kiosk moved to the warehouse\n',
    [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=2\n', 'conf'),
  });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Suspended', 'the suspending commit itself is not applied');
  t.same(r.outcome.bundleErrors, [], 'suspend.yaml is not read as a manifest');
  t.equal(await readFile(conf, 'utf8'), 'v=1\n');
  const doc = await fx.statusOf(a.host);
  t.equal(doc.desiredRevision, held);
  t.match(
    doc.conditions.find((c) => c.type === 'Ready')?.message,
    `suspended by hosts/${a.host}/suspend.yaml: kiosk moved to the warehouse`,
  );

  await docker.getContainer(web).stop({ t: 0 });
  r = await a.once();
  t.equal(await running(web), false, 'drift is not corrected while suspended');
  t.match(r.outcome.results.get(`Container/${web}`), { status: 'Skipped', drift: true });

  // A suspend file without a reason still suspends, and says what is wrong with it (a pin too).
  await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: 'pin: nothing\n' });
  r = await a.once();
  t.equal(r.outcome.phase, 'Suspended');
  t.match(r.outcome.notes, [
    `hosts/${a.host}/suspend.yaml: "pin" is not supported by this agent version; the host is suspended instead`,
    `hosts/${a.host}/suspend.yaml has no "reason" (a non-empty string); the host stays suspended`,
  ]);

  await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: null });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged', 'removing the file resumes');
  t.equal(await running(web), true);
  t.equal(await readFile(conf, 'utf8'), 'v=2\n');
});

t.test('steward validate skips hosts/<host>/suspend.yaml', async (t) => {
  const repo = await mkdtemp(join(tmpdir(), 'steward-suspend-validate-'));
  t.teardown(() => rm(repo, { recursive: true, force: true }));
  await mkdir(join(repo, 'hosts', 'kiosk-1'), { recursive: true });
  await writeFile(join(repo, 'hosts', 'kiosk-1', 'suspend.yaml'), 'reason: maintenance\n');
  await writeFile(join(repo, 'hosts', 'kiosk-1', 'web.yaml'), containerDoc('web', { image: 'local/busybox:1' }));
  const v = await steward(['validate', repo]);
  t.equal(v.code, 0, v.stdout + v.stderr);
});

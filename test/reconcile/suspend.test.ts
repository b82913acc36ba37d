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
    `hosts/${a.host}/suspend.yaml: "pin" must be a full 40-hex commit id (git rev-parse <revision>), not "nothing"; the host is suspended instead`,
    `hosts/${a.host}/suspend.yaml has no "reason" (a non-empty string); the host stays suspended`,
  ]);

  // Hostile files: a reason with terminal escapes and newlines is printed as one plain line; a
  // file too large for a suspend file is not parsed, and still suspends.
  await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: 'reason: "moved\\e[31m\\nto\\tB"\n' });
  r = await a.once();
  t.equal(r.outcome.suspended?.reason, 'moved [31m to B');
  await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: `reason: big\n# ${'x'.repeat(70_000)}\n` });
  r = await a.once();
  t.equal(r.outcome.phase, 'Suspended');
  t.match(r.outcome.notes, [
    /suspend\.yaml is 7\d{4} bytes, more than 65536; it is not read, and the host stays suspended/,
  ]);

  await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: null });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged', 'removing the file resumes');
  t.equal(await running(web), true);
  t.equal(await readFile(conf, 'utf8'), 'v=2\n');
});

t.test(
  'a pin in suspend.yaml holds the host at a commit of the branch, drift corrected, while the branch moves',
  async (t) => {
    const { a, conf, web } = await setup(t);
    const v1 = (await a.once()).outcome.appliedRevision!;
    await fx.fleet.commit({ [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=2\n', 'conf') });
    t.equal((await a.once()).outcome.phase, 'Converged');
    t.equal(await readFile(conf, 'utf8'), 'v=2\n');

    // Pinned back to v1 in the same commit that changes the file again: v1 is enforced.
    const pinning = await fx.fleet.commit({
      [`hosts/${a.host}/suspend.yaml`]: `reason: hold at v1, ticket 99\npin: ${v1}\n`,
      [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=3\n', 'conf'),
    });
    let r = await a.once();
    t.equal(r.outcome.phase, 'Converged', 'a pinned host is not suspended');
    t.equal(
      r.outcome.appliedRevision,
      v1,
      'the pinned commit is applied, although the applied one does not descend from it',
    );
    t.equal(await readFile(conf, 'utf8'), 'v=1\n');
    let doc = await fx.statusOf(a.host);
    t.equal(doc.desiredRevision, v1);
    t.match(
      doc.conditions.find((c) => c.type === 'SourceReady'),
      {
        status: 'True',
        message: `pinned at ${v1} by hosts/${a.host}/suspend.yaml: hold at v1, ticket 99; the branch is at ${pinning}`,
      },
    );
    t.match(doc.conditions.find((c) => c.type === 'Ready')?.message, `(pinned by hosts/${a.host}/suspend.yaml)`);

    // Drift is corrected toward the pin; a newer head is not applied.
    await writeFile(conf, 'edited by hand\n');
    await docker.getContainer(web).stop({ t: 0 });
    const moved = await fx.fleet.commit({ [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=4\n', 'conf') });
    r = await a.once();
    t.equal(r.outcome.phase, 'Converged');
    t.equal(await readFile(conf, 'utf8'), 'v=1\n', 'the edit is corrected to the pinned content');
    t.equal(await running(web), true, 'the stopped container is started again');
    doc = await fx.statusOf(a.host);
    t.match(doc.conditions.find((c) => c.type === 'SourceReady')?.message, `the branch is at ${moved}`);

    // A pin that cannot be followed suspends, and says why.
    await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: `reason: hold\npin: ${'0123456789'.repeat(4)}\n` });
    r = await a.once();
    t.equal(r.outcome.phase, 'Suspended');
    t.match(r.outcome.notes, [/YAML read it as a number: quote it/], 'an all-digit id unquoted is a number to YAML');
    await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: `reason: hold\npin: "${'0123456789'.repeat(4)}"\n` });
    r = await a.once();
    t.equal(r.outcome.phase, 'Suspended');
    t.match(r.outcome.notes, [`the pinned commit 0123456 is not on branch "main"`]);
    await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: `reason: hold\npin: ${v1.slice(0, 7)}\n` });
    r = await a.once();
    t.equal(r.outcome.phase, 'Suspended', 'an abbreviated id is not guessed at');
    t.match(r.outcome.notes, [/"pin" must be a full 40-hex commit id/]);
    t.equal(await readFile(conf, 'utf8'), 'v=1\n', 'nothing applied meanwhile');

    // steward plan on a pinned host plans toward the pin.
    await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: `reason: hold\npin: ${v1}\n` });
    const plan = await steward(['plan', '--config', a.configFile]);
    t.equal(plan.code, 0, plan.stderr);
    t.match(plan.stdout, `pinned at ${v1.slice(0, 12)} by hosts/${a.host}/suspend.yaml: hold`);
    t.match(plan.stdout, `revision ${v1.slice(0, 12)}: 0 change(s)`);

    await fx.fleet.commit({ [`hosts/${a.host}/suspend.yaml`]: null });
    r = await a.once();
    t.equal(r.outcome.phase, 'Converged', 'removing the file follows the branch again');
    t.equal(await readFile(conf, 'utf8'), 'v=4\n');
  },
);

t.test('steward validate skips hosts/<host>/suspend.yaml', async (t) => {
  const repo = await mkdtemp(join(tmpdir(), 'steward-suspend-validate-'));
  t.teardown(() => rm(repo, { recursive: true, force: true }));
  await mkdir(join(repo, 'hosts', 'kiosk-1'), { recursive: true });
  await writeFile(join(repo, 'hosts', 'kiosk-1', 'suspend.yaml'), 'reason: maintenance\n');
  await writeFile(join(repo, 'hosts', 'kiosk-1', 'web.yaml'), containerDoc('web', { image: 'local/busybox:1' }));
  const v = await steward(['validate', repo]);
  t.equal(v.code, 0, v.stdout + v.stderr);
});

t.test('rollout.yaml suspends and pins a selector; a broken one holds every host', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'steward-rollout-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const ring = `r${Date.now().toString(36)}`;
  const a = await fx.agent({ extra: `files:\n  roots: [${root}]\n`, labels: `{ site: test, ring: ${ring} }` });
  const b = await fx.agent({ extra: `files:\n  roots: [${root}]\n`, labels: '{ site: test, ring: other }' });
  const conf = (x: TestAgent) => join(root, `${x.host}.conf`);
  const both = (v: string, more: Record<string, string | null> = {}) =>
    fx.fleet.commit({
      [`hosts/${a.host}/conf.yaml`]: fileDoc(conf(a), `${v}\n`, 'conf'),
      [`hosts/${b.host}/conf.yaml`]: fileDoc(conf(b), `${v}\n`, 'conf'),
      ...more,
    });
  // The fleet repository is this file's: the rollout file must not outlive the test.
  t.teardown(() => fx.fleet.commit({ 'rollout.yaml': null }));
  const v1 = await both('v=1');
  t.equal((await a.once()).outcome.phase, 'Converged');
  t.equal((await b.once()).outcome.phase, 'Converged');

  await both('v=2', {
    'rollout.yaml': `suspend:\n  - selector: { ring: nothing }\n    reason: not this one\n  - selector: { ring: ${ring} }\n    reason: canary ring frozen, ticket 12\n`,
  });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Suspended', 'the selected host is suspended');
  t.same(r.outcome.bundleErrors, [], 'rollout.yaml is not read as a manifest');
  t.match(r.outcome.suspended, { source: 'rollout.yaml suspend[1]', reason: 'canary ring frozen, ticket 12' });
  t.equal(await readFile(conf(a), 'utf8'), 'v=1\n');
  t.match(
    (await fx.statusOf(a.host)).conditions.find((c) => c.type === 'Ready')?.message,
    'suspended by rollout.yaml suspend[1]: canary ring frozen, ticket 12',
  );
  t.equal((await b.once()).outcome.phase, 'Converged', 'a host the selector does not match goes on');
  t.equal(await readFile(conf(b), 'utf8'), 'v=2\n');

  // A pin for the selector: the ring is held at v1 while the branch moves.
  await both('v=3', {
    'rollout.yaml': `suspend:\n  - selector: { ring: ${ring} }\n    reason: hold the ring at v1\n    pin: "${v1}"\n`,
  });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(r.outcome.appliedRevision, v1);
  t.match(r.outcome.pinned, { source: 'rollout.yaml suspend[0]', revision: v1 });
  await writeFile(conf(a), 'edited by hand\n');
  await a.once();
  t.equal(await readFile(conf(a), 'utf8'), 'v=1\n', 'drift is corrected toward the pin');
  t.equal((await b.once()).outcome.phase, 'Converged');
  t.equal(await readFile(conf(b), 'utf8'), 'v=3\n');

  // A broken rollout file holds every host, and names the field.
  await both('v=4', { 'rollout.yaml': `suspend:\n  - selector: { ring: ${ring} }\n    raeson: typo\n` });
  for (const x of [a, b]) {
    r = await x.once();
    t.equal(r.outcome.phase, 'Suspended', `${x === a ? 'the selected' : 'any other'} host is held`);
    t.match(r.outcome.notes, [
      'rollout.yaml is not valid: suspend[0].raeson: unknown field; suspend[0].reason: must be a non-empty string; every host is held until it is fixed (steward validate checks it)',
    ]);
  }
  t.equal(await readFile(conf(b), 'utf8'), 'v=3\n', 'nothing applied');

  // Waves are test/reconcile/rollout.test.ts's; a wave that selects no host holds nothing back.
  await both('v=5', {
    'rollout.yaml': 'waves:\n  - { name: canary, selector: { ring: c }, minConverged: 1, soak: 10m }\n',
  });
  r = await b.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(await readFile(conf(b), 'utf8'), 'v=5\n');

  await fx.fleet.commit({ 'rollout.yaml': null });
  for (const x of [a, b]) {
    t.equal((await x.once()).outcome.phase, 'Converged', 'removing the file lets every host follow the branch');
    t.equal(await readFile(conf(x), 'utf8'), 'v=5\n');
  }
});

t.test('steward validate checks rollout.yaml and names the field', async (t) => {
  const repo = await mkdtemp(join(tmpdir(), 'steward-rollout-validate-'));
  t.teardown(() => rm(repo, { recursive: true, force: true }));
  await mkdir(join(repo, 'hosts', 'kiosk-1'), { recursive: true });
  await writeFile(join(repo, 'hosts', 'kiosk-1', 'web.yaml'), containerDoc('web', { image: 'local/busybox:1' }));
  await writeFile(join(repo, 'rollout.yaml'), 'suspend:\n  - selector: { site: berlin }\n    reason: move\n');
  let v = await steward(['validate', repo]);
  t.equal(v.code, 0, 'a valid rollout.yaml is not read as a manifest: ' + v.stdout + v.stderr);
  await writeFile(
    join(repo, 'rollout.yaml'),
    'suspend:\n  - selector: [berlin]\n    reason: move\nwave: []\nwaves:\n  - { name: canary, selector: {}, minConverged: "150%", soak: 10 }\n  - { name: canary, selector: {} }\n',
  );
  v = await steward(['validate', repo]);
  t.equal(v.code, 2);
  t.match(v.stderr, 'rollout.yaml: wave: unknown field [E_MANIFEST_INVALID]');
  t.match(v.stderr, 'rollout.yaml: waves[0].minConverged: must be a count (2) or a percentage ("50%"), not "150%"');
  t.match(v.stderr, 'rollout.yaml: waves[0].soak: must be a duration such as 10m or 1h30m, at most 168h');
  t.match(v.stderr, 'rollout.yaml: waves[1].name: "canary" names an earlier wave too');
  t.match(v.stderr, 'rollout.yaml: suspend[0].selector: must be a mapping of label: value ({} selects every host)');
});

import t from 'tap';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, docker, fileDoc, makeAgent, uid } from '../helpers/agent.js';
import { createFleetRepo, startGitServer } from '../helpers/git.js';
import { APPLY_PARALLEL } from '../../agent/reconcile/apply.js';

// A first converge applies independent containers at the same time (on the real engine), keeps
// what depends on something after it, skips only what depends on a failure, and journals every
// created container.
t.test('independent containers converge together; dependencies, failures and the inventory hold', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const root = await mkdtemp(join(tmpdir(), 'steward-apply-'));
  const a = await makeAgent({ url: server.url('fleet'), extra: `files:\n  roots: [${root}]\n` });
  t.teardown(() => a.cleanup());
  const tag = uid();
  const name = (n: string) => `${n}-${tag}`;
  const tree: Record<string, string> = {};
  const plain = Array.from({ length: 10 }, (_, i) => name(`c${i}`));
  for (const n of plain) tree[`hosts/${a.host}/${n}.yaml`] = containerDoc(n, { image: 'local/busybox:1' });
  tree[`hosts/${a.host}/conf.yaml`] = fileDoc(join(root, 'app.conf'), 'x=1\n', 'conf');
  tree[`hosts/${a.host}/late.yaml`] = containerDoc(name('late'), {
    image: 'local/busybox:1',
    dependsOn: [`Container/${name('c0')}`, 'File/conf'],
  });
  tree[`hosts/${a.host}/bad.yaml`] = containerDoc(name('bad'), { image: `local/absent-${tag}:1` });
  tree[`hosts/${a.host}/after-bad.yaml`] = containerDoc(name('after-bad'), {
    image: 'local/busybox:1',
    dependsOn: [`Container/${name('bad')}`],
  });
  await fleet.commit(tree);

  const report = await a.once();
  const byId = new Map(Object.entries(report.status?.resources ?? {}));
  for (const n of [...plain, name('late')]) t.equal(byId.get(`Container/${n}`)?.status, 'Ready', `${n} is Ready`);
  t.equal(byId.get(`Container/${name('bad')}`)?.status, 'Failed', 'the container whose image is absent fails');
  t.match(byId.get(`Container/${name('after-bad')}`)?.message, /skipped: Container\/bad-.* failed/);

  // What the engine recorded: when each container was created and started.
  const info = async (n: string) => {
    const i = await docker.getContainer(n).inspect();
    return { created: Date.parse(i.Created), started: Date.parse(i.State.StartedAt) };
  };
  const times = await Promise.all(plain.map(info));
  const overlapping = times.filter((x) => times.some((y) => y !== x && x.created < y.started && y.created < x.started));
  t.ok(overlapping.length >= 2, `containers were created while others started (${overlapping.length} overlap)`);
  const late = await info(name('late'));
  t.ok(late.created >= times[0]!.started, 'a container is created only after the one it depends on started');
  t.ok(late.created >= (await stat(join(root, 'app.conf'))).mtimeMs - 1, '... and after the file it depends on');

  // Nothing created is missing from what the agent owns, at most APPLY_PARALLEL ran at once.
  const state = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')) as {
    inventory: Record<string, unknown>;
  };
  for (const n of [...plain, name('late')]) t.ok(state.inventory[`Container/${n}`], `${n} is in the inventory`);
  t.notOk(state.inventory[`Container/${name('after-bad')}`], 'the skipped one is not owned');
  const inFlight = times.map((x) => times.filter((y) => y.created <= x.created && y.started >= x.created).length);
  t.ok(Math.max(...inFlight) <= APPLY_PARALLEL, `at most ${APPLY_PARALLEL} in flight (saw ${Math.max(...inFlight)})`);
});

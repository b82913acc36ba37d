import t from 'tap';
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { readdir, readFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, makeAgent, type TestAgent } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';
import { showFile, statusRef } from '../helpers/git.js';
import { MAIN as main } from '../helpers/cli.js';

const fx = fleetFixture(t);

/** Runs `steward once` in a child that kills itself with SIGKILL at `point` (STEWARD_FAULT). */
const crashAt = (a: TestAgent, point: string) =>
  new Promise<string | null>((resolve) => {
    const child = execFile(process.execPath, [main, 'once', '--config', a.configFile], {
      env: { ...process.env, STEWARD_FAULT: point },
    });
    child.on('exit', (_c, signal) => resolve(signal));
  });

/** The checks after every crash and repair: one container per resource, all desired and running, state readable, no temp files. */
async function healthyAfter(t: Test, a: TestAgent, root: string, want: string[]) {
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged', 'the next run converges');
  const cs = await a.containers();
  t.same(
    cs.map((c) => c.Labels['steward.id']).sort(),
    want.map((n) => `Container/${n}`).sort(),
    'one container per resource, no orphans',
  );
  t.ok(
    cs.every((c) => c.State === 'running'),
    'all running',
  );
  const state = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8'));
  t.same(
    Object.keys(state.inventory).sort(),
    [...want.map((n) => `Container/${n}`), 'File/cfg'].sort(),
    'state readable and complete',
  );
  const temps = [...(await readdir(a.stateDir)), ...(await readdir(root))].filter((n) => n.startsWith('.stw-'));
  t.same(temps, [], 'no temp files');
  t.equal(
    (await a.once()).outcome.results.size > 0 &&
      [...(await a.once()).outcome.results.values()].every((x) => x.action === 'none'),
    true,
    'and then nothing to do',
  );
}

t.test('kill -9 at each point of a run is repaired by the next run', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'steward-crash-root-'));
  await mkdir(root, { recursive: true });
  const a = await makeAgent({ url: fx.server.url('fleet'), extra: `files:\n  roots: [${root}]\n` });
  fx.agents.push(a);
  const dir = `hosts/${a.host}`;
  const n = (x: string) => `${x}-${a.host}`;
  const cfg = (v: string) =>
    JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name: 'cfg' },
      spec: { path: join(root, 'app.conf'), content: v },
    });
  await fx.fleet.commit({
    [`${dir}/cfg.yaml`]: cfg('v1'),
    [`${dir}/one.yaml`]: containerDoc(n('one'), { image: 'local/busybox:1' }),
  });
  await a.once();

  // 1. after a temp file is written, before the rename
  await fx.fleet.commit({ [`${dir}/cfg.yaml`]: cfg('v2') });
  t.equal(await crashAt(a, 'after-temp-write'), 'SIGKILL');
  t.ok(['v1', 'v2'].includes(await readFile(join(root, 'app.conf'), 'utf8')), 'either content');
  await healthyAfter(t, a, root, [n('one')]);
  t.equal(await readFile(join(root, 'app.conf'), 'utf8'), 'v2');

  // 2. after a container is created, before it is started
  await fx.fleet.commit({ [`${dir}/two.yaml`]: containerDoc(n('two'), { image: 'local/busybox:1' }) });
  t.equal(await crashAt(a, 'after-container-create'), 'SIGKILL');
  t.same(
    (await a.containers()).filter((c) => c.Names[0] === `/${n('two')}`).map((c) => c.State),
    ['created'],
    'left created, not running',
  );
  await healthyAfter(t, a, root, [n('one'), n('two')]);

  // 3. after the old container is stopped, during a recreate
  await fx.fleet.commit({ [`${dir}/one.yaml`]: containerDoc(n('one'), { image: 'local/busybox:2' }) });
  t.equal(await crashAt(a, 'after-container-stop'), 'SIGKILL');
  await healthyAfter(t, a, root, [n('one'), n('two')]);
  t.same(
    (await a.containers()).filter((c) => c.Names[0] === `/${n('one')}`).map((c) => c.Image),
    ['local/busybox:2'],
  );

  // 4. during a prune, after the stop and before the remove
  await fx.fleet.commit({ [`${dir}/two.yaml`]: null });
  t.equal(await crashAt(a, 'during-prune'), 'SIGKILL');
  await healthyAfter(t, a, root, [n('one')]);

  // 5. during the status commit: committed locally, not pushed
  await fx.fleet.commit({ [`${dir}/three.yaml`]: containerDoc(n('three'), { image: 'local/busybox:1' }) });
  t.equal(await crashAt(a, 'during-status-commit'), 'SIGKILL');
  await healthyAfter(t, a, root, [n('one'), n('three')]);
  const status = JSON.parse((await showFile(fx.fleet.bare, statusRef(a.host), `hosts/${a.host}/status.json`))!);
  t.equal(status.appliedRevision, await fx.fleet.git('rev-parse', 'HEAD'), 'the status branch caught up');
});

t.test('a delete that fails stays owned and is retried', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'steward-crash-root-'));
  const a = await makeAgent({ url: fx.server.url('fleet'), extra: `files:\n  roots: [${root}]\n` });
  fx.agents.push(a);
  const file = (name: string) =>
    JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name },
      spec: { path: join(root, name), content: name },
    });
  await fx.fleet.commit({ [`hosts/${a.host}/f.yaml`]: [file('gone'), file('keep')].join('\n---\n') });
  await a.once();
  // Someone replaces the file with a directory: Steward will not delete what is no longer its file.
  const { rm } = await import('node:fs/promises');
  await rm(join(root, 'gone'));
  await mkdir(join(root, 'gone'));
  await fx.fleet.commit({ [`hosts/${a.host}/f.yaml`]: file('keep') });
  let r = await a.once();
  t.match(r.outcome.results.get('File/gone'), { action: 'delete', status: 'Failed', error: { code: 'E_FILE_UNSAFE' } });
  let state = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8'));
  t.ok(state.inventory['File/gone'], 'still owned');
  await rm(join(root, 'gone'), { recursive: true });
  r = await a.once();
  t.match(r.outcome.results.get('File/gone'), { action: 'delete', status: 'Pruned' });
  state = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8'));
  t.equal(state.inventory['File/gone'], undefined, 'released once deleted');
});

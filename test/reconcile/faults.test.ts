import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { containerDoc, docker } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';
import { MAIN as main } from '../helpers/cli.js';

const exec = promisify(execFile);
const fx = fleetFixture(t);
const { agent } = fx;
const engineUp = async (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (
      await docker.ping().then(
        () => true,
        () => false,
      )
    )
      return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
};

t.test(
  'a slow Git server: the request times out, the server is left alone for a backoff, the host keeps its state, then recovers',
  async (t) => {
    const a = await agent({ timeout: '1s', interval: '6s' });
    await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: containerDoc(`slow-${a.host}`, { image: 'local/busybox:1' }) });
    await a.once();
    await fx.server.setDelay(8000);
    t.teardown(() => fx.server.setDelay(0));
    const c2 = await fx.fleet.commit({
      [`hosts/${a.host}/w.yaml`]: containerDoc(`slow-${a.host}`, { image: 'local/busybox:2' }),
    });
    const started = Date.now();
    const r1 = await a.once();
    t.ok(Date.now() - started < 30_000, 'the run did not hang on the silent server');
    t.match(r1.outcome.sourceError, { code: 'E_GIT_TIMEOUT' });
    t.same(
      (await a.containers()).map((c) => c.Image),
      ['local/busybox:1'],
      'the host keeps its state',
    );
    const state = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8'));
    t.equal(state.source.failures, 1);
    const before = (await fx.server.stats()).requests;
    const r2 = await a.once();
    t.equal((await fx.server.stats()).requests, before, 'within the backoff the server is not asked');
    t.match(r2.outcome.sourceError, { code: 'E_GIT_TIMEOUT', message: /next try at/ });
    await fx.server.setDelay(0);
    // The run's clock, moved past the backoff: no sleeping through it.
    const r3 = await a.once({ now: () => new Date(Date.parse(state.source.retryAt) + 50) });
    t.equal(r3.outcome.sourceError, undefined, 'recovered at the first poll after the backoff');
    t.equal(r3.outcome.desiredRevision, c2);
    t.same(
      (await a.containers()).map((c) => c.Image),
      ['local/busybox:2'],
    );
  },
);

t.test('a full disk under stateDir: no truncated state file, the agent stays up, and recovers', async (t) => {
  const mnt = await mkdtemp(join(tmpdir(), 'steward-full-'));
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  t.teardown(() => exec('umount', ['-l', mnt]).catch(() => undefined));
  const a = await agent({ stateDir: mnt });
  await fx.fleet.commit({ [`hosts/${a.host}/w.yaml`]: containerDoc(`full-${a.host}`, { image: 'local/busybox:1' }) });
  t.equal((await a.once()).outcome.phase, 'Converged');
  const stateBefore = await readFile(join(mnt, 'state.json'), 'utf8');
  // Fill the disk to the last byte.
  const filler = join(mnt, 'filler');
  await exec('sh', ['-c', `dd if=/dev/zero of=${filler} bs=4k 2>/dev/null || true`]);
  await docker.getContainer(`full-${a.host}`).remove({ force: true });
  const c2 = await fx.fleet.commit({
    [`hosts/${a.host}/w.yaml`]: containerDoc(`full-${a.host}`, { image: 'local/busybox:2' }),
  });
  const r = await a.once();
  t.ok(r.outcome.sourceError, `the fetch failed: ${r.outcome.sourceError?.message}`);
  t.same(
    (await a.containers()).map((c) => c.Image),
    ['local/busybox:1'],
    'drift still corrected from the last fetched commit',
  );
  t.match(r.status?.warnings ?? [], [/cannot write .*state\.(json|journal): ENOSPC/]);
  const stateText = await readFile(join(mnt, 'state.json'), 'utf8');
  t.doesNotThrow(() => JSON.parse(stateText), 'state.json is whole');
  t.equal(stateText, stateBefore, 'and unchanged');
  t.same(
    (await readdir(mnt)).filter((n) => n.startsWith('.stw-')),
    [],
    'no temp file left',
  );
  await rm(filler);
  // The source is retried after its backoff.
  await new Promise((r) => setTimeout(r, 1100));
  const r2 = await a.once();
  t.equal(r2.outcome.desiredRevision, c2);
  t.equal(r2.outcome.phase, 'Converged');
});

t.test('the Docker engine restarted mid-run: the next run reconnects and converges, with no duplicates', async (t) => {
  const a = await agent();
  const names = Array.from({ length: 8 }, (_, i) => `eng${i}-${a.host}`);
  await fx.fleet.commit(
    Object.fromEntries(names.map((n) => [`hosts/${a.host}/${n}.yaml`, containerDoc(n, { image: 'local/busybox:1' })])),
  );
  const child = execFile(process.execPath, [main, 'once', '--config', a.configFile]);
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  // Wait until the run has created some containers, then restart the engine under it.
  const end = Date.now() + 20_000;
  while ((await a.containers()).length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const pid = (await exec('pidof', ['dockerd'])).stdout.trim().split(' ')[0]!;
  await exec('kill', [pid]);
  while (
    await exec('kill', ['-0', pid]).then(
      () => true,
      () => false,
    )
  )
    await new Promise((r) => setTimeout(r, 100));
  const log = openSync('/var/log/dockerd.log', 'a');
  spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
  t.ok(await engineUp(60_000), 'the engine is back');
  const code = await exited;
  t.not(code, null, `the interrupted run ended on its own (exit ${code})`);
  const r = await a.once();
  t.equal(
    r.outcome.phase,
    'Converged',
    JSON.stringify([...r.outcome.results.values()].filter((x) => x.status !== 'Ready')),
  );
  const cs = await a.containers();
  t.same(cs.map((c) => c.Names[0]!.slice(1)).sort(), [...names].sort(), 'one container per resource');
  t.ok(cs.every((c) => c.State === 'running'));
});

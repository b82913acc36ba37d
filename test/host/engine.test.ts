import t from 'tap';
import { Engine, splitImage } from '../../agent/host/engine.js';
import { docker as dockerode, SLEEPER, uid } from '../helpers/agent.js';

const engine = new Engine('/var/run/docker.sock');

t.test('image references split as the engine wants them (no tag is latest, never every tag)', async (t) => {
  t.same(splitImage('busybox'), { repository: 'busybox', tag: 'latest' });
  t.same(splitImage('local/busybox:1'), { repository: 'local/busybox', tag: '1' });
  t.same(splitImage('127.0.0.1:5000/app'), { repository: '127.0.0.1:5000/app', tag: 'latest' });
  t.same(splitImage('127.0.0.1:5000/app:2.1'), { repository: '127.0.0.1:5000/app', tag: '2.1' });
  const digest = 'sha256:' + 'a'.repeat(64);
  t.same(splitImage(`reg:5000/app@${digest}`), { repository: 'reg:5000/app', tag: digest });
});

t.test('the client drives a container through its life on the real engine, as dockerode sees it', async (t) => {
  const name = `engine-${uid()}`;
  t.teardown(() =>
    dockerode
      .getContainer(name)
      .remove({ force: true })
      .catch(() => undefined),
  );
  t.equal((await engine.version()).Version, (await dockerode.version()).Version, 'version');
  const c = await engine.createContainer({
    name,
    Image: 'local/busybox:1',
    Cmd: SLEEPER,
    Labels: { 'steward.test': name },
  });
  await c.start();
  const info = await engine.getContainer(name).inspect();
  t.equal(info.State.Running, true, 'started');
  t.equal(info.Id, c.id);
  const listed = await engine.listContainers({ all: true });
  t.ok(
    listed.some((x) => x.Id === c.id && x.Labels['steward.test'] === name),
    'listed with its labels',
  );
  const exec = await c.execDetached(['sh', '-c', 'exit 3']);
  let r = await exec.inspect();
  for (let i = 0; r.Running && i < 50; i++) r = (await new Promise((ok) => setTimeout(ok, 100)), await exec.inspect());
  t.equal(r.ExitCode, 3, 'a detached exec and its exit code');
  const again = await c.start().then(
    () => undefined,
    (e: { statusCode?: number }) => e.statusCode,
  );
  t.equal(again, 304, 'starting a running container: 304');
  const taken = await engine.createContainer({ name, Image: 'local/busybox:1' }).then(
    () => undefined,
    (e: { statusCode?: number; json?: { message?: string } }) => e,
  );
  t.equal(taken?.statusCode, 409, 'a taken name: 409');
  t.match(taken?.json?.message, /already in use/, "with the engine's message");
  await c.stop({ t: 1 });
  t.equal((await dockerode.getContainer(name).inspect()).State.Running, false, 'stopped');
  await c.remove({ v: false, force: true });
  const gone = await engine
    .getContainer(name)
    .inspect()
    .then(
      () => undefined,
      (e: { statusCode?: number }) => e.statusCode,
    );
  t.equal(gone, 404, 'removed: 404');
  t.equal(
    await engine
      .getImage('local/no-such-image:1')
      .inspect()
      .then(
        () => undefined,
        (e: { statusCode?: number }) => e.statusCode,
      ),
    404,
    'a missing image: 404',
  );
});

t.test('a pull that fails rejects with the engine message, and a dead socket with its code', async (t) => {
  const err = (await engine.pull('127.0.0.1:1/nothing:1').catch((e: unknown) => e)) as Error;
  t.match(err.message, /127\.0\.0\.1:1|connection refused|dial/i, 'the registry error');
  const down = (await new Engine('/nonexistent/docker.sock').version().catch((e: unknown) => e)) as { code?: string };
  t.equal(down.code, 'ENOENT', 'engine not there');
});

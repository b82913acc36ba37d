import t, { type Test } from 'tap';
import { createHmac } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, fileDoc, memoryLogger, type TestAgent } from '../helpers/agent.js';
import { Notifications, type Notice } from '../../agent/status/notify.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';
import { ageKeygen, sopsTree } from '../helpers/sops.js';

const fx = fleetFixture(t);
const CANARY_TOKEN = 'tk_notifycanary0123456789';
const CANARY_SECRET = 'sekrit-notify-canary-42';

interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A real HTTP receiver on loopback. /hang never answers; /flaky answers 503 once, then 200;
 * /refuse answers 400; everything else 200.
 */
async function receiver(t: Test) {
  const got: Received[] = [];
  const hanging: ServerResponse[] = [];
  let flaky = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      got.push({ path, headers: req.headers, body });
      if (path === '/hang') return void hanging.push(res);
      res.statusCode = path === '/refuse' ? 400 : path === '/flaky' && flaky++ === 0 ? 503 : 200;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const res of hanging) res.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    got,
    on: (p: string) => got.filter((g) => g.path === p),
  };
}

const bodies = (a: Received[]) => a.map((g) => g.body).join('\n');
const settle = (a: TestAgent) => a.ctx.notifier!.drain(15_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('one notification per change to each receiver, in its format, with no secret in it', async (t) => {
  const rx = await receiver(t);
  const root = await mkdtemp(join(tmpdir(), 'steward-notify-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const key = ageKeygen();
  const tokenFile = join(root, 'ntfy-token');
  await writeFile(tokenFile, `${CANARY_TOKEN}\n`);
  const a = await fx.agent({
    extra: [
      `files: { roots: [${root}] }`,
      `secrets: { ageKeyFile: ${key.file} }`,
      'rollback: auto',
      'notify:',
      `  - { url: "${rx.url('/json?key=hidden-query')}" }`,
      `  - { url: "${rx.url('/ntfy')}", format: ntfy, tokenFile: ${tokenFile}, events: [rolledBack, phaseChanged] }`,
      `  - { url: "${rx.url('/slack')}", format: slack, events: [rolledBack] }`,
    ].join('\n'),
  });
  const web = `web-${a.host}`;
  const probe = {
    exec: { command: ['grep', '-q', '1', '/VERSION'] },
    interval: '200ms',
    timeout: '2s',
    deadline: '3s',
  };
  const version = (v: string) =>
    containerDoc(web, {
      image: 'local/busybox:1',
      command: ['sh', '-c', `echo ${v} > /VERSION; trap 'exit 0' TERM; sleep 100000 & wait`],
      probe,
    });
  const v1 = await fx.fleet.commit({
    [`hosts/${a.host}/web.yaml`]: version('1'),
    [`hosts/${a.host}/secret.yaml`]: JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name: 'secret' },
      spec: { path: join(root, 'app.yaml'), source: 'secret.enc.yaml', decrypt: 'sops', mode: '0600' },
    }),
    [`hosts/${a.host}/secret.enc.yaml`]: sopsTree({ password: CANARY_SECRET }, { age: [key.recipient] }),
  });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Converged', JSON.stringify(r.outcome.bundleErrors));
  await settle(a);
  t.equal(rx.on('/json').length, 1, 'json: the first phase');
  const first = JSON.parse(rx.on('/json')[0]!.body) as Record<string, unknown>;
  t.match(first, {
    event: 'phaseChanged',
    host: a.host,
    phase: 'Converged',
    previousPhase: null,
    revision: v1,
    appliedRevision: v1,
    reason: 'Converged',
    message: `2 resource(s) match ${v1.slice(0, 7)}`,
    failed: [],
  });
  t.equal(rx.on('/json')[0]!.headers['content-type'], 'application/json');
  const ntfy = rx.on('/ntfy');
  t.equal(ntfy.length, 1);
  t.match(ntfy[0]!.headers, { title: `steward ${a.host}: Converged`, tags: 'phaseChanged', priority: 'default' });
  t.equal(ntfy[0]!.headers.authorization, `Bearer ${CANARY_TOKEN}`, 'the token goes in the header');
  t.match(ntfy[0]!.body, `${a.host}: Converged: 2 resource(s) match ${v1.slice(0, 7)}`);
  t.equal(rx.on('/slack').length, 0, 'slack wants rollbacks only');

  r = await a.once();
  await settle(a);
  t.equal(rx.got.length, 2, 'a run that changed nothing sends nothing');

  // An unhealthy revision, rolled back: one notification per receiver (not one for the
  // rollback and one for the phase it changed).
  const bad = await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: version('2') });
  r = await a.once();
  t.equal(r.outcome.phase, 'Degraded');
  await settle(a);
  t.equal(rx.on('/json').length, 2);
  t.match(JSON.parse(rx.on('/json')[1]!.body), {
    event: 'rolledBack',
    phase: 'Degraded',
    previousPhase: 'Converged',
    revision: bad,
    appliedRevision: v1,
    reason: 'RolledBack',
    failed: [
      { id: `Container/${web}`, code: 'E_HEALTH_TIMEOUT', message: /not healthy within 3s: probe: grep: exit 1/ },
    ],
  });
  t.equal(rx.on('/ntfy').length, 2);
  t.match(rx.on('/ntfy')[1]!.headers, { tags: 'rolledBack', priority: 'high' });
  t.equal(rx.on('/slack').length, 1);
  t.match(JSON.parse(rx.on('/slack')[0]!.body), {
    text: new RegExp(`^${a.host}: Degraded \\(RolledBack\\): revision ${bad.slice(0, 7)} failed its health checks`),
  });

  r = await a.once();
  t.equal(r.outcome.phase, 'Degraded', 'the failed revision is not tried again');
  await settle(a);
  t.equal(rx.got.length, 5, 'and that is not news: nothing sent');

  const all = bodies(rx.got) + JSON.stringify(rx.got.map((g) => ({ ...g.headers, authorization: undefined })));
  t.notMatch(all, CANARY_SECRET, 'no decrypted value in any notification');
  t.notMatch(all, CANARY_TOKEN, 'the token only in the Authorization header');
  const logs = JSON.stringify(a.logs);
  t.notMatch(logs, 'hidden-query', "the receiver's URL is never logged beyond its origin");
  t.notMatch(logs, CANARY_TOKEN);
});

t.test('a receiver that is down, hangs or refuses delays no run; a 5xx is retried, a 4xx is not', async (t) => {
  const rx = await receiver(t);
  const a = await fx.agent({
    extra: [
      'notify:',
      `  - { url: "${rx.url('/hang')}" }`,
      `  - { url: "${rx.url('/flaky')}", format: ntfy }`,
      `  - { url: "${rx.url('/refuse')}" }`,
      '  - { url: "http://127.0.0.1:1/closed" }',
    ].join('\n'),
  });
  const root = await mkdtemp(join(tmpdir(), 'steward-notify-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await fx.fleet.commit({ [`hosts/${a.host}/web.yaml`]: containerDoc(`web-${a.host}`, { image: 'local/busybox:1' }) });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.ok(a.ctx.notifier!.pending() > 0, 'the run ended while its notifications were still on their way');
  // The flaky receiver's retry comes 1 s after its 503 (the hanging and the closed one go on).
  for (let waited = 0; rx.on('/flaky').length < 2 && waited < 8000; waited += 100) await sleep(100);
  t.equal(rx.on('/hang').length, 1, 'the hanging receiver got its request, and is still holding it');
  t.equal(rx.on('/flaky').length, 2, 'a 503 is retried');
  t.equal(rx.on('/refuse').length, 1, 'a 400 is not');
  const warned = a.logs.filter((l) => l.component === 'notify').map((l) => l.msg);
  t.match(warned, [
    /^notify\[2\] \(http:\/\/127\.0\.0\.1:\d+\): notification not delivered: HTTP 400 \(not retried\)$/,
  ]);
  t.notMatch(JSON.stringify(a.logs), '/closed', 'no URL path in the logs');

  // steward once gives its notifications a moment before it exits.
  const b = await fx.agent({ extra: `files: { roots: [${root}] }\nnotify:\n  - { url: "${rx.url('/once')}" }` });
  await fx.fleet.commit({ [`hosts/${b.host}/conf.yaml`]: fileDoc(join(root, 'b.conf'), 'x\n', 'conf') });
  const once = await steward(['once', '--config', b.configFile]);
  t.equal(once.code, 0, once.stderr);
  t.match(JSON.parse(rx.on('/once')[0]?.body ?? '{}'), { event: 'phaseChanged', phase: 'Converged', host: b.host });
});

t.test('what steward once could not deliver before it exited is sent first by the next run', async (t) => {
  // A receiver that is down when the first once exits: its port is taken, then let go.
  const held = createServer();
  await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
  const port = (held.address() as { port: number }).port;
  await new Promise((r) => held.close(r));
  const url = `http://127.0.0.1:${port}/hook-${CANARY_TOKEN}`;
  const root = await mkdtemp(join(tmpdir(), 'steward-notify-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const a = await fx.agent({ extra: `files: { roots: [${root}] }\nnotify:\n  - { url: "${url}" }` });
  const rev = await fx.fleet.commit({ [`hosts/${a.host}/conf.yaml`]: fileDoc(join(root, 'a.conf'), 'x\n', 'conf') });
  const first = await steward(['once', '--config', a.configFile]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /1 notification\(s\) kept in .*notify\.json for the next run/);
  const kept = await readFile(join(a.stateDir, 'notify.json'), 'utf8');
  t.notMatch(kept, CANARY_TOKEN, "the receiver's URL is not in stateDir (a webhook URL is a secret)");
  t.notMatch(kept, String(port));

  // The receiver is back; the next once changes nothing and tells it what it missed.
  const got: string[] = [];
  const back = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => back.listen(port, '127.0.0.1', r));
  t.teardown(() => back.close());
  const second = await steward(['once', '--config', a.configFile]);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stdout, /1 notification\(s\) an earlier run could not deliver are sent first/);
  t.equal(got.length, 1, 'delivered once');
  t.match(JSON.parse(got[0] ?? '{}'), { event: 'phaseChanged', phase: 'Converged', revision: rev, host: a.host });
  await t.rejects(readFile(join(a.stateDir, 'notify.json')), 'nothing left to keep');

  // A damaged file is left out with a warning; the run goes on.
  await writeFile(join(a.stateDir, 'notify.json'), '{"receivers":[{"receiver":"x","notices":[{"event":1}]}]} trailing');
  const third = await steward(['once', '--config', a.configFile]);
  t.equal(third.code, 0, third.stderr);
  t.equal(got.length, 1, 'nothing sent from it');

  // A kept notice goes out with its own fields only; one of an unknown event not at all.
  const key = Buffer.from((await readFile(join(a.stateDir, 'fingerprint.key'), 'utf8')).trim(), 'hex');
  const receiver = createHmac('sha256', key).update(url).digest('hex').slice(0, 16);
  const notice = {
    ...{ event: 'phaseChanged', host: a.host, phase: 'Failed', previousPhase: 'Converged', revision: rev },
    ...{ appliedRevision: rev, reason: 'Test', message: 'kept', failed: [], at: new Date().toISOString() },
  };
  const notices = [
    { ...notice, extra: 'not-sent-on' },
    { ...notice, event: 'bogus' },
  ];
  await writeFile(join(a.stateDir, 'notify.json'), JSON.stringify({ receivers: [{ receiver, notices }] }));
  const fourth = await steward(['once', '--config', a.configFile]);
  t.equal(fourth.code, 0, fourth.stderr);
  t.equal(got.length, 2, 'one notice sent');
  t.same(JSON.parse(got[1] ?? '{}'), notice, 'with its own fields only');
});

t.test('steward doctor checks each receiver without sending it anything', async (t) => {
  // A raw TCP server: it sees the connection and every byte, so "nothing sent" is checked.
  let connections = 0;
  let bytes = 0;
  const raw = createNetServer((socket) => {
    connections += 1;
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  t.teardown(() => raw.close());
  const port = (raw.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), 'steward-notify-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const token = join(dir, 'token');
  await writeFile(token, `${CANARY_TOKEN}\n`, { mode: 0o600 });
  const a = await fx.agent({
    extra: `notify:\n  - { url: "http://127.0.0.1:${port}/hook-${CANARY_SECRET}", tokenFile: ${token} }`,
  });
  const ok = await steward(['doctor', '--config', a.configFile]);
  t.match(ok.stdout, /^ok {4}notify {6}notify\[0\] \(http:\/\/127\.0\.0\.1:\d+\) reachable \(nothing sent\)$/m);
  for (let waited = 0; connections === 0 && waited < 2000; waited += 50) await sleep(50);
  await sleep(100);
  t.equal(connections, 1, 'it connected');
  t.equal(bytes, 0, 'and wrote nothing: no request reached the receiver');
  t.notMatch(ok.stdout + ok.stderr, CANARY_TOKEN);
  t.notMatch(ok.stdout + ok.stderr, CANARY_SECRET, "the URL's path is not printed");

  const b = await fx.agent({ extra: 'notify:\n  - { url: "http://127.0.0.1:1/closed" }' });
  const bad = await steward(['doctor', '--config', b.configFile]);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /^FAIL {2}notify {6}notify\[0\] \(http:\/\/127\.0\.0\.1:1\) cannot be reached: ECONNREFUSED$/m);
});

t.test('kept notices go behind the one being delivered, never in front of it', async (t) => {
  const rx = await receiver(t);
  const n = (message: string): Notice => ({
    ...{ event: 'phaseChanged', host: 'h', phase: 'Failed', previousPhase: 'Converged', revision: null },
    ...{ appliedRevision: null, reason: 'Test', message, failed: [], at: new Date().toISOString() },
  });
  const url = rx.url('/hang');
  const notifier = new Notifications([{ url, format: 'json', events: ['phaseChanged'] }], memoryLogger([]));
  notifier.send([n('in flight')]);
  for (let waited = 0; rx.on('/hang').length === 0 && waited < 2000; waited += 20) await sleep(20);
  notifier.resume([{ url, notices: [n('kept 1'), n('kept 2')] }]);
  t.same(
    notifier.undelivered()[0]?.notices.map((x) => x.message),
    ['in flight', 'kept 1', 'kept 2'],
    'the one on the wire stays first: it is taken off the queue when its delivery ends',
  );
});

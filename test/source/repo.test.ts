import t from 'tap';
import { mkdtemp, readdir } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpClient, withHead, type HttpStats } from '../../agent/source/http.js';
import { GitRepo, MAX_PACKS } from '../../agent/source/repo.js';
import { SmartHttpTransport, type GitTransport } from '../../agent/source/transport.js';
import { publishStatus } from '../../agent/status/publish.js';
import { readFleet } from '../../agent/status/fleet.js';
import { memoryLogger } from '../helpers/agent.js';
import { createFleetRepo, gitOut, startGitServer } from '../helpers/git.js';
import { convergedDoc } from '../helpers/status.js';

const newRepo = async (url: string, opts: { token?: string; timeoutMs?: number } = {}) => {
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Basic ${Buffer.from(`steward:${opts.token}`).toString('base64')}`;
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-src-')), 'source.git'),
    url,
    headers,
    http: createHttpClient({ timeoutMs: opts.timeoutMs ?? 5000, stats }),
  });
  await repo.init();
  return { repo, stats };
};

t.test('the change check is one small POST; a fetch happens only when the branch moved', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const c1 = await fleet.commit({ 'hosts/a/x.yaml': 'a: 1\n' });
  const { repo, stats } = await newRepo(server.url('fleet'));
  t.equal(await repo.remoteHead('main'), c1);
  t.equal(stats.requests, 1, 'one request');
  t.ok(
    stats.bytesSent < 200 && stats.bytesReceived < 200,
    `~150 bytes each way (sent ${stats.bytesSent}, received ${stats.bytesReceived})`,
  );
  t.equal(await repo.remoteHead('nope'), undefined, 'a missing branch is undefined, not an error');
  t.equal(await repo.fetch('main'), c1);
  t.equal(await repo.localHead('main'), c1);
  const c2 = await fleet.commit({ 'hosts/a/x.yaml': 'a: 2\n' });
  t.equal(await repo.remoteHead('main'), c2);
  t.equal(await repo.fetch('main'), c2);
  t.ok(await repo.hasCommit(c2));
});

t.test('servers without protocol v2 are asked with v1, then only with v1', async (t) => {
  const server = await startGitServer({ v2: false });
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const c1 = await fleet.commit({ 'x.yaml': 'a: 1\n' });
  const { repo, stats } = await newRepo(server.url('fleet'));
  t.equal(await repo.remoteHead('main'), c1);
  const first = stats.requests;
  t.equal(await repo.remoteHead('main'), c1);
  t.equal(stats.requests - first, 1, 'the second check goes straight to v1: one request');
});

t.test('the token is sent up front: no 401 round trip; a wrong token is a clear error without it', async (t) => {
  const server = await startGitServer({ token: 'CANARY_TOKEN_42' });
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const c1 = await fleet.commit({ 'x.yaml': 'a: 1\n' });
  const { repo } = await newRepo(server.url('fleet'), { token: 'CANARY_TOKEN_42' });
  t.equal(await repo.remoteHead('main'), c1);
  t.equal(await repo.fetch('main'), c1);
  t.match(await server.stats(), { requests: 3, unauthorized: 0 });
  const bad = await newRepo(server.url('fleet'), { token: 'wrong' });
  const err = await bad.repo.remoteHead('main').catch((e: Error) => e);
  t.match(err, {
    code: 'E_GIT_AUTH',
    message: `${server.url('fleet')} refused the credentials (HTTP 401); check source.auth`,
  });
  t.notMatch(String((err as Error).message), /wrong|CANARY/);
});

t.test('a server that accepts and never answers is an error after the deadline, not a hang', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    sockets.forEach((s) => s.destroy());
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const { repo } = await newRepo(`http://127.0.0.1:${port}/fleet.git`, { timeoutMs: 500 });
  const started = Date.now();
  const err = await repo.remoteHead('main').catch((e: Error) => e);
  t.match(err, {
    code: 'E_GIT_TIMEOUT',
    message: `cannot reach http://127.0.0.1:${port}/fleet.git: no answer before the deadline`,
  });
  t.ok(Date.now() - started < 5000, 'gave up');
  const err2 = await repo.fetch('main').catch((e: Error) => e);
  t.match(err2, { code: 'E_GIT_TIMEOUT' });
});

t.test('a server that is down is E_GIT_UNREACHABLE', async (t) => {
  const server = await startGitServer();
  const url = server.url('fleet');
  await server.stop();
  const { repo } = await newRepo(url);
  t.match(await repo.remoteHead('main').catch((e: Error) => e), {
    code: 'E_GIT_UNREACHABLE',
    message: `cannot reach ${url}: ECONNREFUSED`,
  });
});

t.test('compaction keeps the object store bounded and the kept commits readable', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const { repo } = await newRepo(server.url('fleet'));
  let head = '';
  let maxPacks = 0;
  for (let i = 0; i < 3 * MAX_PACKS; i++) {
    await fleet.commit({ [`hosts/a/f${i % 3}.yaml`]: `n: ${i}\n` });
    head = await repo.fetch('main');
    if ((await repo.packCount()) > MAX_PACKS) await repo.compact([head]);
    maxPacks = Math.max(maxPacks, await repo.packCount());
  }
  t.ok(maxPacks <= MAX_PACKS + 1, `at most ${MAX_PACKS + 1} packs (saw ${maxPacks})`);
  const before = await repo.packCount();
  await repo.compact([head]);
  t.equal(await repo.packCount(), 1);
  t.ok(before >= 1);
  const files = await readdir(join(repo.gitdir, 'objects', 'pack'));
  t.same(
    files.filter((f) => f.startsWith('tmp-')),
    [],
    'no temp files left',
  );
  const { readManifests } = await import('../../agent/source/tree.js');
  const read = await readManifests(repo.objects, head, ['hosts/a']);
  t.same(
    read.files.map((f) => f.text),
    [`n: ${3 * MAX_PACKS - 3}\n`, `n: ${3 * MAX_PACKS - 2}\n`, `n: ${3 * MAX_PACKS - 1}\n`],
  );
  // a fetch after compaction still works on top of the rewritten shallow store
  const next = await fleet.commit({ 'hosts/a/f0.yaml': 'n: last\n' });
  t.equal(await repo.fetch('main'), next);
});

t.test(
  'a server whose HEAD names a branch that does not exist: fetch, status push and steward status still work',
  async (t) => {
    // `git init --bare` (HEAD -> a default branch) that only ever received other branches; Gogs
    // never lists HEAD at all. isomorphic-git alone fails with "Could not find HEAD" (issue #1654).
    const server = await startGitServer();
    t.teardown(() => server.stop());
    const fleet = await createFleetRepo(server, 'fleet');
    const c1 = await fleet.commit({ 'hosts/a/x.yaml': 'a: 1\n' });
    await gitOut(fleet.bare, 'symbolic-ref', 'HEAD', 'refs/heads/no-such-branch');
    const { repo } = await newRepo(server.url('fleet'));
    t.equal(await repo.fetch('main'), c1, 'the branch is fetched');
    t.ok(await repo.hasCommit(c1));
    const { repo: status } = await newRepo(server.url('fleet'));
    const now = new Date();
    const doc = convergedDoc('a', c1, now);
    t.equal((await publishStatus(status, 'steward-status', doc, memoryLogger([]))).outcome, 'pushed');
    t.equal(
      (
        await publishStatus(
          status,
          'steward-status',
          { ...doc, updatedAt: new Date(now.getTime() + 1000).toISOString() },
          memoryLogger([]),
        )
      ).outcome,
      'pushed',
      'and again, on a tip it fetched',
    );
    const { repo: reader } = await newRepo(server.url('fleet'));
    const { rows } = await readFleet(reader, 'steward-status', new Date());
    t.same(
      rows.map((r) => r.host),
      ['a'],
      'steward status reads the fleet',
    );
  },
);

t.test('withHead: a HEAD line is added after the first ref only when the advertisement has none', async (t) => {
  const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);
  const ad = (...refs: string[]) =>
    Buffer.from(pkt('# service=git-upload-pack\n') + '0000' + refs.map(pkt).join('') + '0000');
  const caps = '\0multi_ack shallow agent=git/2.39\n';
  t.equal(
    withHead(ad(`${a} refs/heads/main${caps}`, `${b} refs/heads/steward-status\n`)).toString(),
    ad(`${a} refs/heads/main${caps}`, `${a} HEAD\n`, `${b} refs/heads/steward-status\n`).toString(),
    'added after the first line',
  );
  const withOne = ad(`${a} HEAD${caps}`, `${a} refs/heads/main\n`);
  t.equal(withHead(withOne), withOne, 'a HEAD already there: unchanged');
  const empty = ad(`${'0'.repeat(40)} capabilities^{}${caps}`);
  t.equal(withHead(empty), empty, 'an empty repository: unchanged');
  const noService = Buffer.from(pkt(`${a} refs/heads/main${caps}`) + '0000');
  t.equal(
    withHead(noService).toString(),
    Buffer.from(pkt(`${a} refs/heads/main${caps}`) + pkt(`${a} HEAD\n`) + '0000').toString(),
    'without the service line too',
  );
  for (const junk of ['', 'hello', '00', 'zzzz0000', pkt('# service=git-upload-pack\n') + '0000' + '00ff' + 'short'])
    t.equal(withHead(Buffer.from(junk)).toString(), junk, `junk ${JSON.stringify(junk.slice(0, 12))}: unchanged`);
});

t.test('every protocol-v2 exchange goes through the transport seam (the one SSH will implement)', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const c1 = await fleet.commit({ 'hosts/a/x.yaml': 'a: 1\n' });
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const http = createHttpClient({ timeoutMs: 5000, stats });
  // The real smart-HTTP transport, wrapped to record what passes through it.
  const inner = new SmartHttpTransport(server.url('fleet'), http, {});
  const seen: string[] = [];
  const transport: GitTransport = {
    where: inner.where,
    call: (service, body, opts) => (seen.push(`call ${service}`), inner.call(service, body, opts)),
    stream: (service, body, opts) => (seen.push(`stream ${service}`), inner.stream(service, body, opts)),
  };
  const repo = new GitRepo({
    gitdir: join(await mkdtemp(join(tmpdir(), 'steward-src-')), 'source.git'),
    url: server.url('fleet'),
    headers: {},
    http,
    transport,
  });
  await repo.init();
  t.equal(await repo.remoteHead('main'), c1);
  t.equal(await repo.fetch('main', c1), c1);
  const doc = convergedDoc('h1', c1, new Date());
  await publishStatus(repo, 'steward-status', doc, memoryLogger([]));
  t.same(
    seen,
    ['call git-upload-pack', 'stream git-upload-pack', 'call git-upload-pack', 'call git-receive-pack'],
    'ls-refs, fetch, ls-refs of the status branch, push: nothing else reached the server',
  );
  t.equal(stats.requests, seen.length, 'and the HTTP client made exactly those requests');
});

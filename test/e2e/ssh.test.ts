import t from 'tap';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetFixture } from '../helpers/fixture.js';
import { fileDoc, memoryLogger } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { sshKey, type SshKey } from '../helpers/signing.js';
import { shareWithSsh, startSshd, type SshServer } from '../helpers/sshd.js';
import { gitOut, statusRef } from '../helpers/git.js';
import { promisify } from 'node:util';
import { createHttpClient } from '../../agent/source/http.js';
import { GitRepo } from '../../agent/source/repo.js';
import { SshTransport } from '../../agent/source/ssh.js';
import { readSshAuth } from '../../agent/source/sshauth.js';
import { hostBranch } from '../../agent/status/fleet.js';
import { publishStatus } from '../../agent/status/publish.js';
import { convergedDoc } from '../helpers/status.js';
import { prefillHostBranches } from '../helpers/prefill.js';

const exec = promisify(execFile);

// The SSH transport end to end: a real OpenSSH sshd on loopback serving the fleet repository
// through git-shell (test/testbed.sh makes the account), deploy keys made by ssh-keygen, the
// host key checked against a known_hosts file. Fetch, apply and the status push all go over SSH.
const dir = await mkdtemp(join(tmpdir(), 'steward-ssh-'));
const root = join(dir, 'root');
const deploy = await sshKey(dir, 'deploy');
const ecdsa = await sshKey(dir, 'deploy-ecdsa', 'ecdsa');
const rsa = await sshKey(dir, 'deploy-rsa', 'rsa', 3072);
const stranger = await sshKey(dir, 'stranger');
const sshd = await startSshd();
for (const k of [deploy, ecdsa, rsa]) await sshd.authorize(await readFile(`${k.path}.pub`, 'utf8'));
const knownHosts = join(dir, 'known_hosts');
await writeFile(knownHosts, sshd.knownHosts);

const fx = fleetFixture(t);
t.before(() => shareWithSsh(fx.fleet.bare));
t.teardown(() => sshd.stop());

const file = (content: string) => fileDoc(join(root, 'motd'), content);

const auth = (key: SshKey, hosts = knownHosts) => `  auth:\n    sshKeyFile: ${key.path}\n    knownHostsFile: ${hosts}`;

function sshAgent(opts: { key?: SshKey; hosts?: string; url?: string; server?: SshServer; extra?: string } = {}) {
  return fx.agent({
    url: opts.url ?? (opts.server ?? sshd).url(fx.fleet.bare),
    sourceExtra: auth(opts.key ?? deploy, opts.hosts),
    extra: `files: { roots: [${root}] }${opts.extra ? `\n${opts.extra}` : ''}`,
  });
}

const accepted = (server: SshServer) =>
  server
    .log()
    .split('\n')
    .filter((l) => l.includes('Accepted publickey')).length;

t.test('fetch, apply and the status push over SSH; an idle poll reuses the connection', async (t) => {
  const a = await sshAgent();
  const path = `hosts/${a.host}/motd.yaml`;
  const rev = await fx.fleet.commit({ [path]: file('over ssh\n') }, 'v1');
  const before = accepted(sshd);
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'over ssh\n');
  const doc = await fx.statusOf(a.host);
  t.equal(doc.appliedRevision, rev, 'the status was pushed through git-receive-pack over SSH');
  t.match(await gitOut(fx.fleet.bare, 'log', '-1', '--format=%s', statusRef(a.host)), a.host);

  // Idle polls (after the run that settles the status): one exchange each (ls-refs), on the
  // connection the first run opened.
  await a.once();
  const idle = { ...a.stats };
  await a.once();
  await a.once();
  t.equal(a.stats.requests - idle.requests, 2, 'one request per idle poll');
  t.ok(a.stats.bytesReceived - idle.bytesReceived < 4096, 'an idle poll reads a few hundred bytes');
  t.equal(accepted(sshd) - before, 1, 'one SSH login for the four runs');

  // The server ends the session (a restart, an idle cut): the next poll logs in again.
  await sshd.dropSessions();
  const moved = await fx.fleet.commit({ [path]: file('after the cut\n') }, 'v2');
  t.equal((await a.once()).outcome.phase, 'Converged');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'after the cut\n');
  t.equal((await fx.statusOf(a.host)).appliedRevision, moved);
  t.equal(accepted(sshd) - before, 2);

  // The deploy key never leaves the process: not in a log line, the status or the state dir.
  const secret = (await readFile(deploy.path, 'utf8')).split('\n')[1]!;
  t.notMatch(JSON.stringify(a.logs), secret);
  t.notMatch(JSON.stringify(doc), secret);
  for (const f of await readdir(a.stateDir)) {
    if (f.endsWith('.json')) t.notMatch(await readFile(join(a.stateDir, f), 'utf8'), secret, f);
  }
});

t.test('ECDSA and RSA deploy keys; ECDSA and RSA host keys', async (t) => {
  for (const key of [ecdsa, rsa]) {
    const a = await sshAgent({ key });
    await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file(`${key.path}\n`) }, 'k');
    t.equal((await a.once()).outcome.phase, 'Converged', key.path);
  }
  for (const type of ['ecdsa', 'rsa'] as const) {
    const server = await startSshd({ hostKeyType: type });
    t.teardown(() => server.stop());
    await server.authorize(await readFile(`${deploy.path}.pub`, 'utf8'));
    const hosts = join(dir, `known_hosts_${type}`);
    await writeFile(hosts, server.knownHosts);
    const a = await sshAgent({ server, hosts });
    await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file(`${type}\n`) }, 'h');
    t.equal((await a.once()).outcome.phase, 'Converged', `${type} host key`);
  }
});

t.test('a host key that is not listed, or changed, is refused before anything is sent', async (t) => {
  const other = await startSshd();
  t.teardown(() => other.stop());
  // known_hosts says 127.0.0.1:PORT has sshd's key, but `other` on that port answers with its own.
  const changed = join(dir, 'known_hosts_changed');
  await writeFile(changed, sshd.knownHosts.replace(`]:${sshd.port} `, `]:${other.port} `));
  await other.authorize(await readFile(`${deploy.path}.pub`, 'utf8'));
  const a = await sshAgent({ server: other, hosts: changed });
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file('never\n') }, 'x');
  let r = await a.once();
  t.equal(r.outcome.phase, 'Failed');
  t.equal(r.outcome.sourceError?.code, 'E_GIT_HOST_KEY');
  t.match(r.outcome.sourceError?.message, `[127.0.0.1]:${other.port}`);
  t.match(r.outcome.sourceError?.message, 'has changed: it presented ssh-ed25519');
  t.equal(accepted(other), 0, 'no login was attempted');
  t.not(await readFile(join(root, 'motd'), 'utf8').catch(() => ''), 'never\n', 'nothing of it applied');

  const unlisted = join(dir, 'known_hosts_unlisted');
  await writeFile(unlisted, sshd.knownHosts.replace('[127.0.0.1]', '[git.example.com]'));
  const b = await sshAgent({ hosts: unlisted });
  r = await b.once();
  t.equal(r.outcome.sourceError?.code, 'E_GIT_HOST_KEY');
  t.match(r.outcome.sourceError?.message, 'is not in knownHostsFile');
});

t.test('a deploy key the server does not know is E_GIT_AUTH naming its fingerprint', async (t) => {
  const a = await sshAgent({ key: stranger });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Failed');
  t.match(r.outcome.sourceError, {
    code: 'E_GIT_AUTH',
    message: `refused the deploy key ${stranger.fingerprint} for user "steward-git"`,
  });
});

t.test('a stopped server is E_GIT_UNREACHABLE; the agent recovers when it is back', async (t) => {
  const server = await startSshd();
  t.teardown(() => server.stop());
  await server.authorize(await readFile(`${deploy.path}.pub`, 'utf8'));
  const hosts = join(dir, 'known_hosts_restart');
  await writeFile(hosts, server.knownHosts);
  const a = await sshAgent({ server, hosts });
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file('back\n') }, 'x');
  t.equal((await a.once()).outcome.phase, 'Converged');
  await server.stop();
  // The server is down: the run goes on with the commit it has, so a hand edit is still undone.
  await writeFile(join(root, 'motd'), 'edited by hand\n');
  const r = await a.once();
  t.equal(r.outcome.sourceError?.code, 'E_GIT_UNREACHABLE');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'back\n', 'drift corrected from the last fetched commit');
  await server.start();
  const later = new Date(Date.now() + 3600_000);
  t.equal((await a.once({ now: () => later })).outcome.phase, 'Converged');

  const gone = await sshAgent({ url: server.url('/tmp/no-such-repo.git'), server, hosts });
  const missing = await gone.once();
  t.equal(missing.outcome.sourceError?.code, 'E_GIT_UNREACHABLE');
  t.match(missing.outcome.sourceError?.message, 'does not appear to be a git repository');
});

t.test('a server that never speaks, or stalls after login, times out', async (t) => {
  // A fake: a TCP listener that accepts and stays silent (no real sshd can be made to do that).
  const held: Socket[] = [];
  const silent = createServer((s) => held.push(s)).listen(0, '127.0.0.1');
  await new Promise((r) => silent.once('listening', r));
  const port = (silent.address() as { port: number }).port;
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const hosts = join(dir, 'known_hosts_silent');
  await writeFile(hosts, sshd.knownHosts.replace(`]:${sshd.port} `, `]:${port} `));
  const a = await fx.agent({
    url: `ssh://steward-git@127.0.0.1:${port}${fx.fleet.bare}`,
    sourceExtra: auth(deploy, hosts),
    timeout: '1s',
  });
  let started = Date.now();
  let r = await a.once();
  t.equal(r.outcome.sourceError?.code, 'E_GIT_TIMEOUT');
  t.ok(Date.now() - started < 10_000, 'the run ends soon after the timeout');

  // Real sshd and git, a server that logs in and then sends nothing: git-upload-pack blocks
  // opening the repository's HEAD, a named pipe nobody writes.
  const stuck = join(dir, 'stuck.git');
  await mkdir(join(stuck, 'objects'), { recursive: true });
  await mkdir(join(stuck, 'refs'));
  await exec('mkfifo', ['-m', '666', join(stuck, 'HEAD')]);
  await exec('chmod', ['-R', 'a+rwX', dir]);
  t.teardown(() => exec('pkill', ['-u', 'steward-git', '-f', 'stuck.git']).catch(() => undefined));
  const b = await fx.agent({ url: sshd.url(stuck), sourceExtra: auth(deploy), timeout: '1s' });
  started = Date.now();
  r = await b.once();
  t.equal(r.outcome.sourceError?.code, 'E_GIT_TIMEOUT');
  t.match(r.outcome.sourceError?.message, /stuck.git: (no answer before the deadline|sent nothing for 1000 ms)/);
  t.ok(Date.now() - started < 10_000);
});

t.test('a pack over source.maxPackSize is cut off over SSH too', async (t) => {
  const a = await fx.agent({
    url: sshd.url(fx.fleet.bare),
    sourceExtra: `${auth(deploy)}\n  maxPackSize: 64KiB`,
  });
  await fx.fleet.commit({ [`hosts/${a.host}/big.yaml`]: `# ${randomBytes(300 * 1024).toString('base64')}\n` }, 'big');
  const r = await a.once();
  t.equal(r.outcome.sourceError?.code, 'E_GIT_TOO_LARGE');
  t.match(r.outcome.sourceError?.message, 'sent more than 64 KiB');
});

t.test('steward once over SSH exits when its run is done (the kept connection does not hold it)', async (t) => {
  const a = await sshAgent();
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file('cli\n') }, 'cli');
  const started = Date.now();
  const res = await steward(['once', '--config', a.configFile], { timeoutMs: 60_000 });
  t.equal(res.code, 0, res.stderr);
  t.ok(Date.now() - started < 30_000);
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'cli\n');
});

t.test("an sshd that drops GIT_PROTOCOL (Debian's stock config) is spoken to in protocol v0", async (t) => {
  const plain = await startSshd({ acceptEnv: false });
  t.teardown(() => plain.stop());
  await plain.authorize(await readFile(`${deploy.path}.pub`, 'utf8'));
  const hosts = join(dir, 'known_hosts_v0');
  await writeFile(hosts, plain.knownHosts);
  const a = await sshAgent({ server: plain, hosts });
  const path = `hosts/${a.host}/motd.yaml`;
  await fx.fleet.commit({ [path]: file('v0 one\n') }, 'v0 one');
  t.equal((await a.once()).outcome.phase, 'Converged');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v0 one\n');
  // Two commits between polls: the head's parent is not here, so the history check deepens
  // the shallow clone (deepen-relative) before the head is applied; the status is pushed.
  await fx.fleet.commit({ [path]: file('v0 two\n') }, 'v0 two');
  const three = await fx.fleet.commit({ [path]: file('v0 three\n') }, 'v0 three');
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged', JSON.stringify(r.outcome.sourceError));
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v0 three\n');
  t.equal((await fx.statusOf(a.host)).appliedRevision, three);
  await a.once(); // settles the status
  const idle = { ...a.stats };
  await a.once();
  await a.once();
  t.equal(a.stats.requests - idle.requests, 2, 'an idle poll is still one exchange');
});

t.test('steward enroll takes the SSH options; steward doctor checks key, host key and a real connection', async (t) => {
  const etc = await mkdtemp(join(tmpdir(), 'steward-enroll-ssh-'));
  const config = join(etc, 'agent.yaml');
  const url = sshd.url(fx.fleet.bare);
  const enrolled = await steward([
    'enroll',
    '--url',
    url,
    '--host',
    'ssh-box',
    '--ssh-key-file',
    deploy.path,
    '--known-hosts-file',
    knownHosts,
    '--state-dir',
    join(etc, 'state'),
    '--config',
    config,
  ]);
  t.equal(enrolled.code, 0, enrolled.stderr);
  t.match(await readFile(config, 'utf8'), `sshKeyFile: ${deploy.path}`);
  t.match(await readFile(config, 'utf8'), `knownHostsFile: ${knownHosts}`);

  let doc = await steward(['doctor', '--config', config]);
  t.match(
    doc.stdout,
    `ok    ssh         deploy key ${deploy.fingerprint}; [127.0.0.1]:${sshd.port} listed (ssh-ed25519)`,
  );
  t.match(doc.stdout, 'ok    git         reachable over SSH (host key verified, deploy key accepted); main at ');

  // The same config with a known_hosts that lists another host, and with a key the server refuses.
  const elsewhere = join(etc, 'known_hosts');
  await writeFile(elsewhere, sshd.knownHosts.replace('[127.0.0.1]', '[git.example.com]'));
  await writeFile(config, (await readFile(config, 'utf8')).replace(knownHosts, elsewhere));
  doc = await steward(['doctor', '--config', config]);
  t.equal(doc.code, 1);
  t.match(
    doc.stdout,
    `FAIL  ssh         deploy key ${deploy.fingerprint}; ${elsewhere} does not list [127.0.0.1]:${sshd.port}`,
  );
  t.match(doc.stdout, /FAIL  git .*E_GIT_HOST_KEY|FAIL  git .*is not in knownHostsFile/);
  await writeFile(
    config,
    (await readFile(config, 'utf8')).replace(elsewhere, knownHosts).replace(deploy.path, stranger.path),
  );
  doc = await steward(['doctor', '--config', config]);
  t.match(doc.stdout, `FAIL  git         `);
  t.match(doc.stdout, `refused the deploy key ${stranger.fingerprint}`);

  const missing = await steward([
    'enroll',
    '--url',
    url,
    '--ssh-key-file',
    deploy.path,
    '--config',
    join(etc, 'b.yaml'),
  ]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, 'an SSH url needs source.auth.knownHostsFile');
});

t.test('the packaged bundle speaks SSH without ssh2 native addons', async (t) => {
  // Laid out as packaging/build.sh ships it: steward.mjs and its chunks/ beside schemas/ and a
  // package.json; ssh2's sshcrypto.node and cpu-features are left out of the bundle.
  const lib = await mkdtemp(join(tmpdir(), 'steward-bundle-'));
  const out = join(lib, 'steward.mjs');
  await exec(process.execPath, ['packaging/bundle.mjs', 'dist/agent/main.js', lib]);
  // Pure ASCII, so V8 holds each file's source one byte per character (a single raw U+FFFF in a
  // regular expression made the main file a two-byte string: +1.15 MiB of idle RSS).
  for (const name of ['steward.mjs', ...(await readdir(join(lib, 'chunks'))).map((c) => join('chunks', c))]) {
    t.notMatch(await readFile(join(lib, name), 'latin1'), /[^\x00-\x7f]/, `${name} is ASCII`);
  }
  // A builtin the agent loads with import() (node:https for an https source, node:child_process
  // for systemd-notify, systemctl and exec probes) is a chunk of its own: it must hand out the
  // builtin's names, not only a default export (an https source failed with "make is not a function").
  const lazy = (await readdir(join(lib, 'chunks'))).filter((c) => /^node_/.test(c));
  t.ok(lazy.length >= 2, `builtins loaded on demand: ${lazy.join(', ')}`);
  for (const chunk of lazy) {
    const name = chunk.replace(/^node_/, '').replace(/-[A-Z0-9]+\.mjs$/, ''); // node_fs_promises: fs/promises
    const id = `node:${isBuiltin(name) ? name : name.replace(/_/g, '/')}`;
    const real = (await import(id)) as Record<string, unknown>;
    const got = (await import(join(lib, 'chunks', chunk))) as Record<string, unknown>;
    const missing = Object.keys(real).filter((n) => typeof real[n] === 'function' && got[n] !== real[n]);
    t.same(missing, [], `${chunk} gives every function of ${id}`);
  }
  await exec('cp', ['-r', 'schemas', lib]);
  await writeFile(join(lib, 'package.json'), '{ "type": "module" }\n');
  const a = await sshAgent();
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file('bundled\n') }, 'bundled');
  // Which builtins the run loaded, written when it exits.
  const preload = join(lib, 'modules.cjs');
  const loaded = join(lib, 'modules.txt');
  await writeFile(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(loaded)}, process.moduleLoadList.join('\\n')));\n`,
  );
  // Without the NODE_OPTIONS tap puts into every child it starts: its process tracking loads
  // child_process there.
  const once = ['-u', 'NODE_OPTIONS', process.execPath, '-r', preload, out, 'once', '--config', a.configFile];
  const res = await exec('env', once).catch((e: unknown) => e);
  t.notOk(res instanceof Error, String((res as { stderr?: string }).stderr ?? ''));
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'bundled\n');
  // A run that starts no child does not load child_process: node-cron imports it for a forked
  // scheduler the agent never uses, and the bundle looks fork up on its first call (0.9 MiB of
  // the daemon's RSS on Node 26).
  const modules = (await readFile(loaded, 'utf8')).split('\n');
  t.ok(modules.includes('NativeModule net'), 'the run loaded what it used');
  t.notOk(modules.includes('NativeModule child_process'), 'child_process is not loaded');
});

t.test('steward status reads the status branch over SSH, from the config or the flags', async (t) => {
  const a = await sshAgent();
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: file('status\n') }, 'status');
  t.equal((await a.once()).outcome.phase, 'Converged');
  const fromConfig = await steward(['status', '--config', a.configFile, '--host', a.host]);
  t.equal(fromConfig.code, 0, fromConfig.stderr);
  t.match(fromConfig.stdout, a.host);
  const url = sshd.url(fx.fleet.bare);
  const fromFlags = await steward([
    'status',
    '--url',
    url,
    '--ssh-key-file',
    deploy.path,
    '--known-hosts-file',
    knownHosts,
    '--host',
    a.host,
    '--json',
  ]);
  t.equal(fromFlags.code, 0, fromFlags.stderr);
  t.equal(JSON.parse(fromFlags.stdout).host, a.host);
  const noKey = await steward(['status', '--url', url]);
  t.equal(noKey.code, 2);
  t.match(noKey.stderr, 'is SSH: give --ssh-key-file and --known-hosts-file');
});

t.test('a status report over SSH reads the ref advertisement of every branch, compressed', async (t) => {
  // git-receive-pack has no protocol v2: the push starts with one line per ref on the server.
  // 300 other host branches make that ~28 KB; compressed (zlib after login) it is a fraction, and
  // on the kept connection the next report's advertisement repeats what zlib's window holds.
  const tip = (await gitOut(fx.fleet.bare, 'rev-parse', 'HEAD')).trim();
  const names = Array.from({ length: 300 }, (_, i) => `edge-${String(i).padStart(4, '0')}`);
  await prefillHostBranches(fx.fleet.bare, names, tip); // a commit of its own on each branch
  const listed = (await gitOut(fx.fleet.bare, 'for-each-ref', '--format=%(objectname) %(refname)')).split('\n');
  const plain = listed.reduce((sum, l) => sum + 4 + l.length + 1, 0);
  t.ok(plain > 25_000, `the advertisement is ${plain} bytes uncompressed`);

  const stats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const auth = await readSshAuth({ file: join(dir, 'agent.yaml') }, deploy.path, knownHosts);
  const transport = new SshTransport({ url: sshd.url(fx.fleet.bare), username: 'git', auth, timeoutMs: 20_000, stats });
  t.teardown(() => transport.close());
  const repo = new GitRepo({
    gitdir: join(dir, 'ssh-status.git'),
    url: sshd.url(fx.fleet.bare),
    headers: {},
    http: createHttpClient({ timeoutMs: 20_000 }),
    transport,
  });
  await repo.init();
  const log = memoryLogger([]);
  const branch = hostBranch('steward-status', 'ssh-reporter');
  const report = () => publishStatus(repo, branch, convergedDoc('ssh-reporter', tip, new Date()), log, { own: true });
  await report();
  const before = { ...stats };
  for (let i = 0; i < 3; i++) t.equal((await report()).attempts, 1);
  t.equal(stats.requests - before.requests, 3, 'one exchange per report');
  const perReport = (stats.bytesReceived - before.bytesReceived) / 3;
  t.ok(perReport < plain / 2, `a report received ${perReport} bytes, less than half of ${plain}`);
  t.equal(
    JSON.parse(await gitOut(fx.fleet.bare, 'show', `${branch}:hosts/ssh-reporter/status.json`)).host,
    'ssh-reporter',
  );
});

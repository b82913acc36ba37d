import t from 'tap';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { makeAgent, type TestAgent } from '../helpers/agent.js';
import {
  createFleetRepo,
  showFile,
  startGitServer,
  type FleetRepo,
  type GitServer,
  statusRef,
} from '../helpers/git.js';
import { formatError } from '../../agent/errors.js';
import { Fingerprint } from '../../agent/host/fingerprint.js';
import type { DesiredFile } from '../../agent/manifest/bundle.js';
import { FileDriver } from '../../agent/resources/file.js';
import { promisify } from 'node:util';
import { MAIN as main } from '../helpers/cli.js';

const execFileP = promisify(execFile);

const fileDoc = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'steward/v1', kind: 'File', metadata: { name }, spec });

let server: GitServer;
let fleet: FleetRepo;
t.before(async () => {
  server = await startGitServer();
  fleet = await createFleetRepo(server, 'fleet');
});
t.teardown(() => server.stop());

/** An agent whose only root is a fresh temp folder; `outside` holds a canary that must never change. */
async function setup(): Promise<{ a: TestAgent; root: string; outside: string; canary: string }> {
  const base = await mkdtemp(join(tmpdir(), 'steward-files-'));
  const root = join(base, 'etc-kiosk');
  const outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  const canary = join(outside, 'canary.txt');
  await writeFile(canary, 'do not touch\n');
  const a = await makeAgent({ url: server.url('fleet'), extra: `files:\n  roots: [${root}]\n` });
  return { a, root, outside, canary };
}
/** The short fingerprint a reason shows: HMAC-SHA-256 under the host's key in stateDir. */
async function fingerprintOf(a: TestAgent): Promise<(text: string) => string> {
  const key = Buffer.from((await readFile(join(a.stateDir, 'fingerprint.key'), 'utf8')).trim(), 'hex');
  return (text) => createHmac('sha256', key).update(text).digest('hex').slice(0, 12);
}
const results = (r: Awaited<ReturnType<TestAgent['once']>>) =>
  [...r.outcome.results.values()].map((x) => `${x.id} ${x.status} ${x.action}: ${x.message}`);

t.test('create, change content, mode and owner, then absent and prune', async (t) => {
  const { a, root, canary } = await setup();
  const dir = `hosts/${a.host}`;
  const path = join(root, 'app', 'config.ini');
  await fleet.commit({
    [`${dir}/files.yaml`]: fileDoc('config', { path, content: 'color=blue SECRET_CANARY\n', mode: '0640' }),
    [`${dir}/motd/motd.txt`]: 'welcome\n',
    [`${dir}/motd/motd.yaml`]: fileDoc('motd', { path: join(root, 'motd'), source: 'motd.txt' }),
  });
  let r = await a.once();
  const h = await fingerprintOf(a);
  t.same(results(r).sort(), [
    `File/config Ready create: create: file does not exist (fingerprint ${h('color=blue SECRET_CANARY\n')})`,
    `File/motd Ready create: create: file does not exist (fingerprint ${h('welcome\n')})`,
  ]);
  t.equal(await readFile(path, 'utf8'), 'color=blue SECRET_CANARY\n');
  t.equal((await stat(path)).mode & 0o777, 0o640);
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'welcome\n', 'source read from the commit, next to the manifest');
  t.equal((await stat(join(root, 'app'))).mode & 0o777, 0o755, 'parent created');

  await fleet.commit({
    [`${dir}/files.yaml`]: fileDoc('config', {
      path,
      content: 'color=green SECRET_CANARY\n',
      mode: '0600',
      owner: 'nobody',
      group: 'nogroup',
    }),
  });
  r = await a.once();
  t.same(
    results(r).filter((x) => x.startsWith('File/config')),
    [
      `File/config Ready update: update: content changed (fingerprint ${h('color=blue SECRET_CANARY\n')} -> ${h('color=green SECRET_CANARY\n')}); mode 0640 -> 0600; owner 0 -> 65534; group 0 -> 65534`,
    ],
  );
  const st = await stat(path);
  t.same([st.mode & 0o777, st.uid, st.gid], [0o600, 65534, 65534]);
  t.equal(await readFile(path, 'utf8'), 'color=green SECRET_CANARY\n');

  await writeFile(path, 'edited by hand\n');
  r = await a.once();
  t.match(r.outcome.results.get('File/config'), {
    action: 'update',
    drift: true,
    message: `update: content was changed outside Steward (fingerprint ${h('edited by hand\n')} -> ${h('color=green SECRET_CANARY\n')})`,
  });
  t.equal(await readFile(path, 'utf8'), 'color=green SECRET_CANARY\n', 'drift corrected');

  await fleet.commit({ [`${dir}/files.yaml`]: fileDoc('config', { path, ensure: 'absent' }) });
  r = await a.once();
  t.match(r.outcome.results.get('File/config'), { action: 'delete', status: 'Ready' });
  t.equal(await lstat(path).catch(() => 'gone'), 'gone');

  await fleet.commit({ [`${dir}/motd/motd.yaml`]: null });
  r = await a.once();
  t.match(r.outcome.results.get('File/motd'), { action: 'delete', status: 'Pruned' });
  t.equal(await lstat(join(root, 'motd')).catch(() => 'gone'), 'gone');
  t.equal(await readFile(canary, 'utf8'), 'do not touch\n');

  const statusText = (await showFile(fleet.bare, statusRef(a.host), `hosts/${a.host}/status.json`)) ?? '';
  const logText = JSON.stringify(a.logs);
  t.notMatch(statusText + logText, /SECRET_CANARY|color=/, 'content never reaches logs or status');
});

t.test('a file that was there before is kept, and put back when the resource is pruned', async (t) => {
  const { a, root } = await setup();
  const path = join(root, 'hosts.conf');
  await writeFile(path, 'original\n', { mode: 0o604 });
  await fleet.commit({ [`hosts/${a.host}/f.yaml`]: fileDoc('hosts', { path, content: 'managed\n' }) });
  const r = await a.once();
  t.match(r.outcome.results.get('File/hosts'), {
    message:
      /^update: replaces a file Steward did not write \(the original is kept\) \(fingerprint [0-9a-f]{12} -> [0-9a-f]{12}\); mode 0604 -> 0644$/,
  });
  t.equal(await readFile(path, 'utf8'), 'managed\n');
  await fleet.commit({
    [`hosts/${a.host}/f.yaml`]: null,
    [`hosts/${a.host}/keep.yaml`]: fileDoc('keep', { path: join(root, 'keep'), content: 'k\n' }),
  });
  await a.once();
  t.equal(await readFile(path, 'utf8'), 'original\n', 'the original is back');
  t.equal((await stat(path)).mode & 0o777, 0o604);
});

t.test('hostile paths: rejected before anything is written, or refused on disk', async (t) => {
  const { a, root, outside, canary } = await setup();
  const dir = `hosts/${a.host}`;
  await fleet.commit({
    [`${dir}/ok.yaml`]: fileDoc('ok', { path: join(root, 'ok'), content: 'ok\n' }),
    [`${dir}/bad.yaml`]: [
      fileDoc('dots', { path: `${root}/../outside/canary.txt`, content: 'x' }),
      fileDoc('outside', { path: canary, content: 'x' }),
      fileDoc('state', { path: join(a.stateDir, 'state.json'), content: 'x' }),
      fileDoc('slashes', { path: `${root}//a`, content: 'x' }),
      fileDoc('escape', { path: join(root, 'x'), source: '../../../../etc/passwd' }),
    ].join('\n---\n'),
  });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Invalid');
  t.same(r.outcome.bundleErrors.map(formatError), [
    `hosts/${a.host}/bad.yaml:1: /spec/path: path "${root}/../outside/canary.txt" must not contain ".." [E_MANIFEST_INVALID]`,
    `hosts/${a.host}/bad.yaml:3: /spec/path: path "${canary}" is not below any of the configured files.roots (${root}) [E_MANIFEST_INVALID]`,
    `hosts/${a.host}/bad.yaml:5: /spec/path: path "${a.stateDir}/state.json" is not below any of the configured files.roots (${root}) [E_MANIFEST_INVALID]`,
    `hosts/${a.host}/bad.yaml:7: /spec/path: path "${root}//a" must be normalized (no ".", "//" or trailing "/"): "${root}/a" [E_MANIFEST_INVALID]`,
    `hosts/${a.host}/bad.yaml:9: /spec/source: source "../../../../etc/passwd" must be a path inside the repository, relative to hosts/${a.host}/bad.yaml [E_MANIFEST_SOURCE]`,
  ]);
  t.equal(await lstat(join(root, 'ok')).catch(() => 'absent'), 'absent', 'nothing written, not even the valid file');

  // On disk: a planted symlink at the target, and a symlinked parent directory.
  await symlink(canary, join(root, 'link.conf'));
  await symlink(outside, join(root, 'sub'));
  await fleet.commit({
    [`${dir}/bad.yaml`]: [
      fileDoc('link', { path: join(root, 'link.conf'), content: 'pwned\n' }),
      fileDoc('parent', { path: join(root, 'sub', 'canary.txt'), content: 'pwned\n' }),
    ].join('\n---\n'),
  });
  r = await a.once();
  t.match(r.outcome.results.get('File/link'), {
    status: 'Failed',
    error: { code: 'E_FILE_UNSAFE', message: `${root}/link.conf is a symlink; Steward does not follow symlinks` },
  });
  t.match(r.outcome.results.get('File/parent'), {
    status: 'Failed',
    error: { code: 'E_FILE_UNSAFE', message: `${root}/sub is a symlink; Steward does not follow symlinks` },
  });
  t.match(r.outcome.results.get('File/ok'), { status: 'Ready' }, 'the rest still applies');
  t.equal(await readFile(canary, 'utf8'), 'do not touch\n', 'the canary outside the roots is untouched');
  t.ok((await lstat(join(root, 'link.conf'))).isSymbolicLink(), 'the planted link is left as it was');
});

t.test('a root-level config with a stateDir inside a root is still protected', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'steward-files-'));
  const a = await makeAgent({ url: server.url('fleet'), extra: `files:\n  roots: [${tmpdir()}]\n` });
  await fleet.commit({
    [`hosts/${a.host}/s.yaml`]: fileDoc('s', { path: join(a.stateDir, 'inventory.json'), content: 'x' }),
    [`hosts/${a.host}/ok.yaml`]: fileDoc('ok', { path: join(base, 'ok'), content: 'x' }),
  });
  const r = await a.once();
  t.same(r.outcome.bundleErrors.map(formatError), [
    `hosts/${a.host}/s.yaml:1: /spec/path: path "${a.stateDir}/inventory.json" is Steward's own file or folder (${a.stateDir}) and may not be managed [E_MANIFEST_INVALID]`,
  ]);
});

t.test(
  'kill -9 between the temp write and the rename: the next run leaves no temp file and one of the contents',
  async (t) => {
    const { a, root } = await setup();
    const path = join(root, 'crash.conf');
    await fleet.commit({ [`hosts/${a.host}/c.yaml`]: fileDoc('crash', { path, content: 'old\n' }) });
    await a.once();
    await fleet.commit({ [`hosts/${a.host}/c.yaml`]: fileDoc('crash', { path, content: 'new\n' }) });
    const killed = await new Promise<string | null>((resolve) => {
      const child = execFile(process.execPath, [main, 'once', '--config', a.configFile], {
        env: { ...process.env, STEWARD_FAULT: 'after-temp-write' },
      });
      child.on('exit', (_code, signal) => resolve(signal));
    });
    t.equal(killed, 'SIGKILL', 'the agent died mid-write');
    const left = (await readdir(root)).filter((n) => n.startsWith('.stw-'));
    t.equal(left.length, 1, 'a temp file was left by the crash');
    t.equal(await readFile(path, 'utf8'), 'old\n', 'the target still holds the old content');
    const r = await a.once();
    t.equal(r.outcome.phase, 'Converged');
    t.same(
      (await readdir(root)).filter((n) => n.startsWith('.stw-')),
      [],
      'no temp files after the next run',
    );
    t.equal(await readFile(path, 'utf8'), 'new\n');
  },
);

t.test(
  'a File whose path changes: the old path is deleted, the file at the new one backed up and restored on prune',
  async (t) => {
    const { a, root } = await setup();
    const first = join(root, 'new.conf');
    const second = join(root, 'orig.conf');
    await writeFile(second, 'not written by Steward\n', { mode: 0o640 });
    await fleet.commit({ [`hosts/${a.host}/p.yaml`]: fileDoc('p', { path: first, content: 'managed\n' }) });
    await a.once();
    t.equal(await readFile(first, 'utf8'), 'managed\n');

    await fleet.commit({ [`hosts/${a.host}/p.yaml`]: fileDoc('p', { path: second, content: 'managed\n' }) });
    let r = await a.once();
    t.match(r.outcome.results.get('File/p'), {
      status: 'Ready',
      action: 'update',
      message: `update: path changed from ${first}: that file is deleted; replaces a file Steward did not write (the original is kept) (fingerprint ${(await fingerprintOf(a))('not written by Steward\n')} -> ${(await fingerprintOf(a))('managed\n')}); mode 0640 -> 0644`,
    });
    t.equal(await lstat(first).catch(() => 'gone'), 'gone', 'the old path is deleted');
    t.equal(await readFile(second, 'utf8'), 'managed\n');
    const inventory = JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')).inventory['File/p'];
    t.equal(inventory.path, second, 'the inventory names the new path');
    t.ok(inventory.backup, 'the replaced file is backed up');

    await fleet.commit({
      [`hosts/${a.host}/p.yaml`]: null,
      [`hosts/${a.host}/keep.yaml`]: fileDoc('keep', { path: join(root, 'keep'), content: 'k\n' }),
    });
    r = await a.once();
    t.match(r.outcome.results.get('File/p'), { status: 'Pruned' });
    t.equal(await readFile(second, 'utf8'), 'not written by Steward\n', 'the original content is back');
    t.equal((await stat(second)).mode & 0o777, 0o640, 'with its mode');
    t.equal(await lstat(first).catch(() => 'gone'), 'gone', 'nothing left at the first path');
    t.notOk(
      JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')).inventory['File/p'],
      'the inventory is exact',
    );
  },
);

t.test('a path change back and forth between two owned paths keeps nothing stale', async (t) => {
  const { a, root } = await setup();
  const x = join(root, 'x.conf');
  const y = join(root, 'y.conf');
  for (const [path, content] of [
    [x, '1\n'],
    [y, '2\n'],
    [x, '3\n'],
  ] as const) {
    await fleet.commit({ [`hosts/${a.host}/p.yaml`]: fileDoc('p', { path, content }) });
    const r = await a.once();
    t.equal(r.outcome.phase, 'Converged');
    t.equal(await readFile(path, 'utf8'), content);
    t.equal(await lstat(path === x ? y : x).catch(() => 'gone'), 'gone', 'only one path exists at a time');
  }
  t.same(
    Object.keys(JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')).inventory['File/p']).sort(),
    ['hash', 'kind', 'path', 'revision'],
    'no backup recorded for files Steward made',
  );
});

t.test('a 250-byte file name is written (the temp name does not grow with it)', async (t) => {
  const { a, root } = await setup();
  const path = join(root, 'n'.repeat(250));
  await fleet.commit({ [`hosts/${a.host}/long.yaml`]: fileDoc('long', { path, content: 'long\n' }) });
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged', JSON.stringify([...r.outcome.results.values()].map((x) => x.message)));
  t.equal(await readFile(path, 'utf8'), 'long\n');
});

t.test('a temp file left by a crash is removed when its resource is pruned before its next write', async (t) => {
  const { a, root } = await setup();
  const path = join(root, 'crash2.conf');
  await fleet.commit({
    [`hosts/${a.host}/c.yaml`]: fileDoc('crash2', { path, content: 'old\n' }),
    [`hosts/${a.host}/keep.yaml`]: fileDoc('keep', { path: join(root, 'keep'), content: 'k\n' }),
  });
  await a.once();
  await fleet.commit({ [`hosts/${a.host}/c.yaml`]: fileDoc('crash2', { path, content: 'new\n' }) });
  await new Promise((resolve) =>
    execFile(process.execPath, [main, 'once', '--config', a.configFile], {
      env: { ...process.env, STEWARD_FAULT: 'after-temp-write' },
    }).on('exit', resolve),
  );
  t.equal((await readdir(root)).filter((n) => n.startsWith('.stw-')).length, 1, 'the crash left a temp file');
  await fleet.commit({ [`hosts/${a.host}/c.yaml`]: null });
  const r = await a.once();
  t.match(r.outcome.results.get('File/crash2'), { status: 'Pruned' });
  t.same(
    (await readdir(root)).filter((n) => n.startsWith('.stw-')),
    [],
    'the temp file went with its resource',
  );
});

t.test('a prune blocked by a symlinked parent says so (not "already gone") and keeps the file owned', async (t) => {
  const { a, root, outside } = await setup();
  const sub = join(root, 'sub');
  await mkdir(sub);
  await fleet.commit({
    [`hosts/${a.host}/s.yaml`]: fileDoc('s', { path: join(sub, 'f.conf'), content: 'x\n' }),
    [`hosts/${a.host}/keep.yaml`]: fileDoc('keep', { path: join(root, 'keep'), content: 'k\n' }),
  });
  await a.once();
  await execFileP('mv', [sub, join(root, 'moved')]);
  await symlink(outside, sub);
  await fleet.commit({ [`hosts/${a.host}/s.yaml`]: null });
  const r = await a.once();
  t.match(r.outcome.results.get('File/s'), {
    status: 'Failed',
    error: {
      code: 'E_FILE_UNSAFE',
      message: `${sub} is a symlink; Steward does not follow symlinks; ${sub}/f.conf is not deleted`,
    },
  });
  t.ok(
    JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')).inventory['File/s'],
    'still owned, retried next run',
  );
});

t.test('kill -9 right after the first change is journaled: the next run knows the file is its own', async (t) => {
  const { a, root } = await setup();
  await fleet.commit({
    [`hosts/${a.host}/j.yaml`]: ['j1', 'j2', 'j3']
      .map((n) => fileDoc(n, { path: join(root, n), content: `${n}\n` }))
      .join('\n---\n'),
  });
  const signal = await new Promise<string | null>((resolve) =>
    execFile(process.execPath, [main, 'once', '--config', a.configFile], {
      env: { ...process.env, STEWARD_FAULT: 'after-journal' },
    }).on('exit', (_c, s) => resolve(s)),
  );
  t.equal(signal, 'SIGKILL', 'died after the first journal record');
  t.equal(await readFile(join(root, 'j1'), 'utf8'), 'j1\n');
  t.same(
    (await readFile(join(a.stateDir, 'state.journal'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id),
    ['File/j1'],
    'one record',
  );
  const r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.same(
    [...r.outcome.results.values()].map((x) => `${x.id} ${x.action}`).sort(),
    ['File/j1 none', 'File/j2 create', 'File/j3 create'],
    'j1 is known as written by Steward: not replaced, not backed up',
  );
  t.same(await readdir(join(a.stateDir, 'backup')).catch(() => []), [], 'no backup of Steward’s own file');
  t.equal(
    await lstat(join(a.stateDir, 'state.journal')).catch(() => 'gone'),
    'gone',
    'the journal is folded into state.json at the end of the run',
  );
  t.same(Object.keys(JSON.parse(await readFile(join(a.stateDir, 'state.json'), 'utf8')).inventory).sort(), [
    'File/j1',
    'File/j2',
    'File/j3',
  ]);
});

t.test('the health check of a File does not read through a symlinked parent either', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'steward-check-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const [root, outside] = [join(base, 'root'), join(base, 'outside')];
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, 'app.conf'), 'wanted\n');
  await symlink(outside, join(root, 'sub'));
  const driver = new FileDriver(base, { roots: [root], forbidden: [] }, new Fingerprint(Buffer.alloc(32, 1)));
  const d: DesiredFile = {
    ...{ id: 'File/app', kind: 'File', name: 'app', file: 'f.yaml', line: 1 },
    spec: { path: join(root, 'sub', 'app.conf'), content: 'wanted\n' },
    data: Buffer.from('wanted\n'),
  };
  const health = await driver.check(d);
  t.equal(health.state, 'unhealthy', 'the same content behind a symlinked folder is not "content matches"');
  await rm(join(root, 'sub'));
  await mkdir(join(root, 'sub'));
  await writeFile(join(root, 'sub', 'app.conf'), 'wanted\n');
  t.equal((await driver.check(d)).state, 'healthy', 'in a real folder it is');
});

import t from 'tap';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetFixture } from '../helpers/fixture.js';
import { fileDoc } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { gpgHome, sshKey } from '../helpers/signing.js';

// source.verify end to end: a real Git server, commits signed by real git + ssh-keygen + gpg, a
// real host directory the File resources write to. A refused head is never applied, the last
// good revision keeps being enforced (drift corrected), and the next signed commit applies.
const dir = await mkdtemp(join(tmpdir(), 'steward-signed-'));
const root = join(dir, 'root');
const alice = await sshKey(dir, 'alice');
const mallory = await sshKey(dir, 'mallory');
const gpg = await gpgHome(dir);
const release = await gpg.key('Release Bot <release@example.com>', { algo: 'rsa3072' });
await writeFile(join(dir, 'allowed_signers'), `${alice.allowed('alice@example.com')}\n`);
await writeFile(join(dir, 'keys.asc'), await gpg.exportPublic(release.fingerprint));

const fx = fleetFixture(t);

const file = (content: string) => fileDoc(join(root, 'motd'), content);

t.test('only signed heads are applied; a refused one leaves the last good revision enforced', async (t) => {
  const a = await fx.agent({
    sourceExtra: `  verify:\n    allowedSignersFile: ${join(dir, 'allowed_signers')}\n    gpgKeysFile: ${join(dir, 'keys.asc')}`,
    extra: `files: { roots: [${root}] }`,
  });
  const path = `hosts/${a.host}/motd.yaml`;
  const good = await fx.fleet.commit({ [path]: file('v1\n') }, 'v1', { sign: alice });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v1\n');
  let doc = await fx.statusOf(a.host);
  t.same(doc.signer, { revision: good, format: 'ssh', fingerprint: alice.fingerprint, principal: 'alice@example.com' });

  // An unsigned push: refused, nothing of it applied; a hand edit is still corrected.
  const unsigned = await fx.fleet.commit({ [path]: file('pwned\n') }, 'unsigned');
  await writeFile(join(root, 'motd'), 'edited by hand\n');
  r = await a.once();
  t.equal(r.outcome.phase, 'Failed');
  t.match(r.outcome.sourceError, {
    code: 'E_GIT_UNSIGNED',
    message: `commit ${unsigned.slice(0, 7)} is not applied: the commit is not signed`,
  });
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v1\n', 'drift corrected to the last good revision');
  doc = await fx.statusOf(a.host);
  t.equal(doc.appliedRevision, good);
  t.equal(doc.desiredRevision, unsigned);
  t.match(
    doc.conditions.find((c) => c.type === 'SourceReady'),
    { status: 'False', reason: 'E_GIT_UNSIGNED' },
  );
  t.equal(doc.signer?.revision, good, 'the status still names who signed what runs');

  // Signed, by a key nobody listed.
  const forged = await fx.fleet.commit({ [path]: file('pwned\n') }, 'forged', { sign: mallory });
  r = await a.once();
  t.match(r.outcome.sourceError, {
    code: 'E_GIT_SIGNATURE',
    message: `commit ${forged.slice(0, 7)} is not applied: key ${mallory.fingerprint} is not in allowedSignersFile`,
  });
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v1\n');
  const plan = await steward(['plan', '--config', a.configFile]);
  t.match(plan.stdout, `signature: ${forged.slice(0, 12)} is refused (E_GIT_SIGNATURE): key ${mallory.fingerprint}`);

  // The next properly signed commit (OpenPGP this time) applies; its verdict is computed once.
  const next = await fx.fleet.commit({ [path]: file('v2\n') }, 'v2', { sign: release });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'v2\n');
  await a.once();
  const verified = a.logs.filter((l) => String(l.msg).startsWith(`revision ${next.slice(0, 7)} is signed by`));
  t.equal(verified.length, 1, 'verified once, not once per poll');
  t.equal(
    verified[0]!.msg,
    `revision ${next.slice(0, 7)} is signed by Release Bot <release@example.com> (OpenPGP key ${release.fingerprint})`,
  );
  doc = await fx.statusOf(a.host);
  t.same(doc.signer, {
    revision: next,
    format: 'openpgp',
    fingerprint: release.fingerprint,
    principal: 'Release Bot <release@example.com>',
  });
  const status = await steward(['status', '--url', fx.server.url('fleet'), '--host', a.host]);
  t.match(
    status.stdout,
    `signed by: Release Bot <release@example.com> (OpenPGP key ${release.fingerprint}) at ${next.slice(0, 7)}`,
  );
});

t.test('a signed suspend.yaml cannot pin the host to an unsigned commit', async (t) => {
  const a = await fx.agent({
    sourceExtra: `  verify:\n    allowedSignersFile: ${join(dir, 'allowed_signers')}`,
    extra: `files: { roots: [${root}] }`,
  });
  const path = `hosts/${a.host}/motd.yaml`;
  const good = await fx.fleet.commit({ [path]: file('pin v1\n') }, 'v1', { sign: alice });
  t.equal((await a.once()).outcome.phase, 'Converged');
  const unsigned = await fx.fleet.commit({ [path]: file('pwned\n') }, 'unsigned');
  const suspend = `hosts/${a.host}/suspend.yaml`;
  await fx.fleet.commit({ [suspend]: `reason: hold\npin: "${unsigned}"\n` }, 'pin', { sign: alice });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Failed', 'the pinned commit passes the signature gate or is not applied');
  t.match(r.outcome.sourceError, { code: 'E_GIT_UNSIGNED', message: `commit ${unsigned.slice(0, 7)} is not applied` });
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'pin v1\n');
  await fx.fleet.commit({ [suspend]: `reason: hold\npin: "${good}"\n` }, 'pin good', { sign: alice });
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.equal(r.outcome.appliedRevision, good);
  t.equal(r.outcome.pinned?.revision, good);
});

t.test('enroll writes source.verify; doctor says what the key files hold', async (t) => {
  const config = join(dir, 'enrolled.yaml');
  const r = await steward([
    'enroll',
    '--url',
    fx.server.url('fleet'),
    '--host',
    'signed-enroll',
    '--allowed-signers-file',
    join(dir, 'allowed_signers'),
    '--gpg-keys-file',
    join(dir, 'keys.asc'),
    '--state-dir',
    join(dir, 'enrolled-state'),
    '--config',
    config,
    '--no-systemd',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(
    await readFile(config, 'utf8'),
    `verify:\n    allowedSignersFile: ${join(dir, 'allowed_signers')}\n    gpgKeysFile: ${join(dir, 'keys.asc')}`,
  );
  const d = await steward(['doctor', '--config', config]);
  t.match(
    d.stdout,
    `ok    signatures  heads must be signed: 1 SSH signer(s) in ${join(dir, 'allowed_signers')}, 1 OpenPGP key(s) in ${join(dir, 'keys.asc')}`,
  );
});

import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../agent/config/load.js';
import { StewardError } from '../../agent/errors.js';
import { loadTrust, verifyCommit, type Trust } from '../../agent/source/verify.js';
import { gpgHome, sshKey, type SigningKey } from '../helpers/signing.js';

// Commits signed by real `git commit -S` with real gpg and ssh-keygen keys; Steward's verdict is
// compared with `git verify-commit` given only the listed keys (a fresh GNUPGHOME holding just
// gpgKeysFile, and gpg.ssh.allowedSignersFile).
const exec = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'steward-verify-'));
const repo = join(dir, 'repo');
const clean = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
const git = async (env: Record<string, string>, ...args: string[]) =>
  (await exec('git', ['-C', repo, ...args], { env: { ...clean, ...env }, encoding: 'buffer' })).stdout as Buffer;
await exec('git', ['init', '-q', '-b', 'main', repo]);

let n = 0;
async function commit(key: SigningKey | undefined, env: Record<string, string> = {}): Promise<string> {
  await writeFile(join(repo, 'f'), String(++n));
  await git({}, 'add', 'f');
  const who = ['-c', 'user.name=Op', '-c', 'user.email=op@example.com'];
  await git(
    { ...key?.env, ...env },
    ...who,
    ...(key?.config ?? []),
    'commit',
    '-q',
    ...(key ? ['-S'] : []),
    '-m',
    `c${n}`,
  );
  return (await git({}, 'rev-parse', 'HEAD')).toString().trim();
}
const raw = (oid: string) => git({}, 'cat-file', 'commit', oid);

// OpenPGP keys: the three families, a signing subkey, one expired, one revoked, one not listed.
const gpg = await gpgHome(dir);
const pgp = {
  ed25519: await gpg.key('Ed <ed@example.com>'),
  rsa: await gpg.key('Rsa <rsa@example.com>', { algo: 'rsa3072' }),
  ecdsa: await gpg.key('Ecc <ecc@example.com>', { algo: 'nistp256' }),
  subkey: await gpg.key('Sub <sub@example.com>', { subkey: true }),
  expired: await gpg.key('Old <old@example.com>', { fakedTime: '20200101T000000' }),
  revoked: await gpg.key('Rev <rev@example.com>'),
  unlisted: await gpg.key('Stranger <x@example.com>'),
};
const ssh = {
  ed25519: await sshKey(dir, 'ssh-ed25519'),
  ecdsa: await sshKey(dir, 'ssh-ecdsa', 'ecdsa', 256),
  rsa: await sshKey(dir, 'ssh-rsa', 'rsa', 3072),
  retired: await sshKey(dir, 'ssh-retired'),
  unlisted: await sshKey(dir, 'ssh-unlisted'),
};

const commits: Record<string, string> = {};
for (const [name, key] of Object.entries(pgp))
  commits[`pgp-${name}`] = await commit(
    key,
    name === 'expired' ? { GIT_COMMITTER_DATE: '2020-06-01T00:00:00Z', GIT_AUTHOR_DATE: '2020-06-01T00:00:00Z' } : {},
  );
for (const [name, key] of Object.entries(ssh)) commits[`ssh-${name}`] = await commit(key);
commits.unsigned = await commit(undefined);
// A signed commit with its message altered after signing: the signature no longer covers it.
const tamper = async (oid: string, message: string) =>
  (
    await exec(
      'sh',
      [
        '-c',
        `git -C ${repo} cat-file commit ${oid} | sed 's/^${message}$/${message} altered/' | git -C ${repo} hash-object -t commit -w --stdin`,
      ],
      { env: clean },
    )
  ).stdout.trim();
commits.tampered = await tamper(commits['pgp-ed25519']!, 'c1');
commits['ssh-tampered'] = await tamper(commits['ssh-ed25519']!, 'c8');
await gpg.revoke(pgp.revoked.fingerprint);

// The trust: every key but the unlisted ones; the retired SSH key valid only before 2020.
const keysFile = join(dir, 'fleet-keys.asc');
const listed = Object.entries(pgp).filter(([k]) => k !== 'unlisted');
await writeFile(keysFile, await gpg.exportPublic(...listed.map(([, k]) => k.fingerprint)));
const signersFile = join(dir, 'allowed_signers');
await writeFile(
  signersFile,
  [
    '# who may sign the fleet',
    ssh.ed25519.allowed('alice@example.com'),
    ssh.ecdsa.allowed('bob@example.com', 'namespaces="git"'),
    ssh.rsa.allowed('carol@example.com'),
    ssh.retired.allowed('dave@example.com', 'valid-before="20200101"'),
    '',
  ].join('\n'),
);
const config = parseConfig(
  `host: h\nsource:\n  url: http://127.0.0.1:1/fleet.git\n  verify:\n    allowedSignersFile: ${signersFile}\n    gpgKeysFile: ${keysFile}\n`,
  join(dir, 'agent.yaml'),
);
const trust = (await loadTrust(config)) as Trust;

// git's verdict with only the listed keys.
const verifierHome = join(dir, 'verifier');
await exec('mkdir', ['-m', '700', verifierHome]);
await exec('gpg', ['--batch', '--import', keysFile], { env: { ...clean, GNUPGHOME: verifierHome } });
const gitAccepts = (oid: string) =>
  git({ GNUPGHOME: verifierHome }, '-c', `gpg.ssh.allowedSignersFile=${signersFile}`, 'verify-commit', oid).then(
    () => true,
    () => false,
  );

const expected: Record<string, RegExp | { principal: string; fingerprint: string }> = {
  'pgp-ed25519': { principal: 'Ed <ed@example.com>', fingerprint: pgp.ed25519.fingerprint },
  'pgp-rsa': { principal: 'Rsa <rsa@example.com>', fingerprint: pgp.rsa.fingerprint },
  'pgp-ecdsa': { principal: 'Ecc <ecc@example.com>', fingerprint: pgp.ecdsa.fingerprint },
  'pgp-subkey': { principal: 'Sub <sub@example.com>', fingerprint: pgp.subkey.fingerprint },
  'pgp-expired': new RegExp(`OpenPGP key ${pgp.expired.fingerprint} expired on 2020-12-31`),
  'pgp-revoked': new RegExp(`OpenPGP key ${pgp.revoked.fingerprint} is revoked`),
  'pgp-unlisted': /signed by OpenPGP key [0-9A-F]{16}, which gpgKeysFile does not list/,
  'ssh-ed25519': { principal: 'alice@example.com', fingerprint: ssh.ed25519.fingerprint },
  'ssh-ecdsa': { principal: 'bob@example.com', fingerprint: ssh.ecdsa.fingerprint },
  'ssh-rsa': { principal: 'carol@example.com', fingerprint: ssh.rsa.fingerprint },
  'ssh-retired': new RegExp(
    `key ${ssh.retired.fingerprint.replace(/[+/]/g, '\\$&')} is listed .*valid-before 2020-01-01`,
  ),
  'ssh-unlisted': new RegExp(`key ${ssh.unlisted.fingerprint.replace(/[+/]/g, '\\$&')} is not in allowedSignersFile`),
  unsigned: /the commit is not signed/,
  tampered: new RegExp(`OpenPGP key ${pgp.ed25519.fingerprint}: .*Signed digest did not match`),
  'ssh-tampered': /signature does not verify|does not match/,
};

for (const [name, want] of Object.entries(expected))
  t.test(name, async (t) => {
    const oid = commits[name]!;
    const verdict = await verifyCommit(await raw(oid), trust, new Date());
    const accepted = !(want instanceof RegExp);
    t.equal(verdict.ok, accepted, accepted ? 'accepted' : 'refused');
    t.equal(await gitAccepts(oid), accepted, 'git verify-commit agrees');
    if (verdict.ok && !(want instanceof RegExp)) {
      t.equal(verdict.signer.principal, want.principal);
      t.equal(verdict.signer.fingerprint, want.fingerprint);
    } else if (!verdict.ok && want instanceof RegExp) {
      t.equal(verdict.code, name === 'unsigned' ? 'E_GIT_UNSIGNED' : 'E_GIT_SIGNATURE');
      t.match(verdict.reason, want);
    }
  });

t.test('an SSH signature with no allowedSignersFile, an OpenPGP one with no gpgKeysFile', async (t) => {
  const only = { ...trust, ssh: undefined };
  const v = await verifyCommit(await raw(commits['ssh-ed25519']!), only as Trust, new Date());
  t.same(v, {
    ok: false,
    code: 'E_GIT_SIGNATURE',
    reason: 'it carries an SSH signature and source.verify has no allowedSignersFile',
  });
  const w = await verifyCommit(await raw(commits['pgp-ed25519']!), { ...trust, pgp: undefined } as Trust, new Date());
  t.match(w, { ok: false, reason: /OpenPGP signature and source.verify has no gpgKeysFile/ });
});

t.test('bad key files stop the agent with the file and the reason', async (t) => {
  const cfg = (lines: string) =>
    parseConfig(`host: h\nsource:\n  url: http://127.0.0.1:1/f.git\n  verify:\n${lines}`, join(dir, 'agent.yaml'));
  const bad = join(dir, 'bad_signers');
  await writeFile(bad, `${ssh.ed25519.allowed('a@b')}\nnot a key line\n`);
  await t.rejects(loadTrust(cfg(`    allowedSignersFile: ${bad}\n`)), {
    code: 'E_CONFIG_INVALID',
    message: new RegExp(`^${bad}: line 2: `),
  });
  await t.rejects(loadTrust(cfg(`    gpgKeysFile: ${join(dir, 'nope.asc')}\n`)), {
    code: 'E_CONFIG_READ',
    message: /cannot read .*nope.asc \(source.verify.gpgKeysFile\): ENOENT/,
  });
  const huge = join(dir, 'huge.asc');
  await writeFile(huge, Buffer.alloc(5 * 1024 * 1024, 0x41));
  await t.rejects(loadTrust(cfg(`    gpgKeysFile: ${huge}\n`)), {
    code: 'E_CONFIG_INVALID',
    message: `${huge} is 5242880 bytes; a key file may hold at most 4 MiB`,
  });
  const junk = join(dir, 'junk.asc');
  await writeFile(junk, 'hello\n');
  const err = await loadTrust(cfg(`    gpgKeysFile: ${junk}\n`)).catch((e: unknown) => e);
  t.ok(err instanceof StewardError && err.code === 'E_CONFIG_INVALID', 'not armored keys');
  const secret = join(dir, 'secret.asc');
  await writeFile(
    secret,
    (
      await exec(
        'gpg',
        [
          '--batch',
          '--pinentry-mode',
          'loopback',
          '--passphrase',
          '',
          '--armor',
          '--export-secret-keys',
          pgp.ed25519.fingerprint,
        ],
        { env: { ...clean, GNUPGHOME: gpg.home } },
      )
    ).stdout,
  );
  const leak = await loadTrust(cfg(`    gpgKeysFile: ${secret}\n`)).catch((e: unknown) => e as Error);
  t.match(leak, { code: 'E_CONFIG_INVALID', message: /holds a private key/ });
  t.notMatch((leak as Error).message, /PRIVATE KEY BLOCK|lQ/, 'no key material in the message');
});

t.test('the key files digest changes with their content', async (t) => {
  const again = (await loadTrust(config)) as Trust;
  t.equal(again.digest, trust.digest, 'same files, same digest');
  await writeFile(signersFile, `${ssh.ed25519.allowed('alice@example.com')}\n`);
  t.not(((await loadTrust(config)) as Trust).digest, trust.digest, 'a key removed: another digest');
});

import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  fingerprintOf,
  parseAllowedSigners,
  splitSignedCommit,
  verifySshSignature,
} from '../../agent/source/sshsig.js';

// Signatures made by the real tools (ssh-keygen, git commit -S with gpg.format=ssh); the verdict
// compared with git's own (`git verify-commit`, which runs `ssh-keygen -Y verify`).
const exec = promisify(execFile);
const KEYS = [
  ['ed25519', []],
  ['ecdsa', ['-b', '256']],
  ['ecdsa', ['-b', '384']],
  ['ecdsa', ['-b', '521']],
  ['rsa', ['-b', '3072']],
] as const;

const dir = await mkdtemp(join(tmpdir(), 'steward-sshsig-'));
const git = (repo: string, ...args: string[]) =>
  exec('git', ['-C', repo, ...args], {
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', TZ: 'UTC' },
  });

async function keyPair(name: string, type: string, extra: readonly string[]) {
  const path = join(dir, name);
  await exec('ssh-keygen', ['-q', '-t', type, ...extra, '-N', '', '-C', `${name}@test`, '-f', path]);
  return { path, pub: (await readFile(`${path}.pub`, 'utf8')).trim() };
}

/** A repository with one commit signed by `key`; returns its raw commit object. */
async function signedCommit(key: string, message = 'signed\n', date = '2026-12-01T10:00:00Z') {
  const repo = await mkdtemp(join(dir, 'repo-'));
  await git(repo, 'init', '-q', '-b', 'main');
  await writeFile(join(repo, 'a.yaml'), 'a: 1\n');
  await git(repo, 'add', 'a.yaml');
  await exec(
    'git',
    [
      '-C',
      repo,
      '-c',
      'user.name=Op',
      '-c',
      'user.email=op@example.com',
      '-c',
      'gpg.format=ssh',
      '-c',
      `user.signingkey=${key}`,
      'commit',
      '-q',
      '-S',
      '-m',
      message,
    ],
    {
      env: {
        ...process.env,
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_COMMITTER_DATE: date,
        GIT_AUTHOR_DATE: date,
      },
    },
  );
  const raw = (await exec('git', ['-C', repo, 'cat-file', 'commit', 'HEAD'], { encoding: 'buffer' })).stdout as Buffer;
  return { repo, raw };
}

/** git's verdict with an allowed_signers file. */
async function gitVerdict(repo: string, allowed: string): Promise<boolean> {
  return exec('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${allowed}`, 'verify-commit', 'HEAD'], {
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  }).then(
    () => true,
    () => false,
  );
}

t.test('a commit signed by each SSH key type verifies when its key is listed, as git says', async (t) => {
  for (const [i, [type, extra]] of KEYS.entries()) {
    const k = await keyPair(`k${i}`, type, extra);
    const { repo, raw } = await signedCommit(k.path);
    const allowed = join(dir, `allowed${i}`);
    await writeFile(allowed, `op@example.com namespaces="git" ${k.pub}\n`);
    const { signers, errors } = parseAllowedSigners(await readFile(allowed, 'utf8'));
    t.same(errors, []);
    const c = splitSignedCommit(raw);
    t.ok(c.signature, `${type} ${extra.join(' ')}: the commit carries a signature`);
    const v = verifySshSignature(c.signature!, c.payload, signers, c.committedAt!);
    const fp = (await exec('ssh-keygen', ['-l', '-f', `${k.path}.pub`])).stdout.split(' ')[1];
    t.same(v, { ok: true, fingerprint: fp, principal: 'op@example.com' }, `${type} ${extra.join(' ')}: accepted`);
    t.equal(await gitVerdict(repo, allowed), true, 'and git agrees');
    // The same commit with its message altered after signing.
    const tampered = splitSignedCommit(Buffer.from(raw.toString('latin1').replace('signed\n', 'signed!\n'), 'latin1'));
    const bad = verifySshSignature(tampered.signature!, tampered.payload, signers, c.committedAt!);
    t.match(bad, { ok: false, reason: /does not match the commit/ }, `${type}: a tampered message is refused`);
  }
});

t.test('refused: an unlisted key, outside valid-before, another namespace, unsigned', async (t) => {
  const k = await keyPair('ref', 'ed25519', []);
  const other = await keyPair('other', 'ed25519', []);
  const { repo, raw } = await signedCommit(k.path, 'signed\n', '2026-12-01T10:00:00Z');
  const c = splitSignedCommit(raw);
  const check = async (line: string) => {
    const allowed = join(dir, `allowed-${Math.random().toString(36).slice(2)}`);
    await writeFile(allowed, line + '\n');
    const { signers } = parseAllowedSigners(line);
    return {
      ours: verifySshSignature(c.signature!, c.payload, signers, c.committedAt!),
      git: await gitVerdict(repo, allowed),
    };
  };
  const unlisted = await check(`op@example.com ${other.pub}`);
  t.match(unlisted.ours, {
    ok: false,
    fingerprint: fingerprintOf(Buffer.from(k.pub.split(' ')[1]!, 'base64')),
    reason: /not in allowedSignersFile/,
  });
  t.equal(unlisted.git, false, 'git refuses it too');
  const expired = await check(`op@example.com valid-before="20261130" ${k.pub}`);
  t.match(expired.ours, {
    ok: false,
    reason: /not for a commit made at 2026-12-01T10:00:00.000Z: valid-before 2026-11-30T.* \(line 1\)/,
  });
  t.equal(expired.git, false, 'git refuses it too');
  const later = await check(`op@example.com valid-after="20261201",valid-before="20261202" ${k.pub}`);
  t.match(later.ours, { ok: true }, 'inside the window');
  t.equal(later.git, true);
  const both = await check(`op@example.com namespaces="file,git" ${k.pub}`);
  t.match(both.ours, { ok: true }, 'namespaces may list several');
  t.equal(both.git, true);
  const files = await check(`op@example.com namespaces="file" ${k.pub}`);
  t.match(files.ours, { ok: false }, 'a key listed for another namespace');
  t.equal(files.git, false);
  // A signature over the commit but for namespace "file" (ssh-keygen -Y sign -n file).
  await writeFile(join(dir, 'payload'), c.payload);
  await exec('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'file', '-f', k.path, join(dir, 'payload')]);
  const fileSig = await readFile(join(dir, 'payload.sig'), 'utf8');
  t.match(
    verifySshSignature(fileSig, c.payload, parseAllowedSigners(`op@example.com ${k.pub}`).signers, c.committedAt!),
    {
      ok: false,
      reason: 'signed for namespace "file", not "git"',
    },
  );
  t.match(verifySshSignature('junk', c.payload, [], new Date()), { ok: false, reason: /cannot be read/ });
  const unsigned = await mkdtemp(join(dir, 'plain-'));
  await git(unsigned, 'init', '-q', '-b', 'main');
  await exec(
    'git',
    [
      '-C',
      unsigned,
      '-c',
      'user.name=Op',
      '-c',
      'user.email=op@example.com',
      'commit',
      '-q',
      '--allow-empty',
      '-m',
      'x',
    ],
    {
      env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    },
  );
  const plain = (await exec('git', ['-C', unsigned, 'cat-file', 'commit', 'HEAD'], { encoding: 'buffer' }))
    .stdout as Buffer;
  t.equal(splitSignedCommit(plain).signature, undefined, 'an unsigned commit has no signature');
});

t.test('allowed_signers lines that cannot be read are named by line', async (t) => {
  const { signers, errors } = parseAllowedSigners(
    '# comment\n\nop@x ssh-ed25519 AAAA\nop@x cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsGu7ZzR3f8gF6w1Mmn1kqS0wH1nL0nqkq0q1c3X7bE\nop@x valid-after="yesterday",namespaces="git" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsGu7ZzR3f8gF6w1Mmn1kqS0wH1nL0nqkq0q1c3X7bE\n',
  );
  t.equal(signers.length, 0);
  t.same(
    errors.map((e) => e.replace(/:.*/, '')),
    ['line 3', 'line 4', 'line 5'],
  );
  t.match(errors[1], 'cert-authority keys are not supported');
  t.match(errors[2], 'cannot read the time "yesterday"');
});

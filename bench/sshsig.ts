// Time to verify one SSH-signed commit per key type (made by the real ssh-keygen and git), the
// cost a new revision pays once when source.verify is on.
//   node --import ./test/loader/register.mjs bench/sshsig.ts [rounds=200]
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllowedSigners, splitSignedCommit, verifySshSignature } from '../agent/source/sshsig.js';

const exec = promisify(execFile);
const rounds = Number(process.argv[2] ?? 200);
const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
);
const dir = await mkdtemp(join(tmpdir(), 'steward-bench-sshsig-'));
for (const [type, extra] of [
  ['ed25519', []],
  ['ecdsa', ['-b', '256']],
  ['ecdsa', ['-b', '521']],
  ['rsa', ['-b', '3072']],
] as const) {
  const key = join(dir, `${type}${extra.join('')}`);
  await exec('ssh-keygen', ['-q', '-t', type, ...extra, '-N', '', '-f', key]);
  const repo = await mkdtemp(join(dir, 'repo-'));
  await exec('git', ['-C', repo, 'init', '-q'], { env });
  await writeFile(join(repo, 'a'), 'a\n');
  await exec('git', ['-C', repo, 'add', 'a'], { env });
  const c = ['-c', 'user.name=O', '-c', 'user.email=o@e', '-c', 'gpg.format=ssh', '-c', `user.signingkey=${key}`];
  await exec('git', ['-C', repo, ...c, 'commit', '-q', '-S', '-m', 'x'], { env });
  const raw = (await exec('git', ['-C', repo, 'cat-file', 'commit', 'HEAD'], { encoding: 'buffer', env }))
    .stdout as Buffer;
  const { signers } = parseAllowedSigners(`o@e ${(await readFile(`${key}.pub`, 'utf8')).trim()}`);
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const s = splitSignedCommit(raw);
    if (!verifySshSignature(s.signature!, s.payload, signers, s.committedAt!).ok) throw new Error('not verified');
  }
  console.log(
    `${type} ${extra.join(' ')}: ${((performance.now() - t0) / rounds).toFixed(3)} ms per commit (${rounds} rounds)`,
  );
}

// OpenPGP (gpg-made keys, git commit -S with gpg.format=openpgp), through verifyCommit as the
// agent calls it. The first verification also pays for loading OpenPGP.js (lazily imported).
const { gpgHome } = await import('../test/helpers/signing.js');
const { loadTrust, verifyCommit } = await import('../agent/source/verify.js');
const gpg = await gpgHome(dir);
for (const algo of ['ed25519', 'nistp256', 'rsa3072']) {
  const key = await gpg.key(`${algo} <${algo}@example.com>`, { algo });
  const repo = await mkdtemp(join(dir, 'repo-'));
  await exec('git', ['-C', repo, 'init', '-q'], { env });
  await writeFile(join(repo, 'a'), 'a\n');
  await exec('git', ['-C', repo, 'add', 'a'], { env });
  const c = ['-c', 'user.name=O', '-c', 'user.email=o@e', ...key.config];
  await exec('git', ['-C', repo, ...c, 'commit', '-q', '-S', '-m', 'x'], { env: { ...env, ...key.env } });
  const raw = (await exec('git', ['-C', repo, 'cat-file', 'commit', 'HEAD'], { encoding: 'buffer', env }))
    .stdout as Buffer;
  const keysFile = join(dir, `${algo}.asc`);
  await writeFile(keysFile, await gpg.exportPublic(key.fingerprint));
  const trust = (await loadTrust({
    file: join(dir, 'agent.yaml'),
    source: { verify: { gpgKeysFile: keysFile } },
  } as never))!;
  const first = performance.now();
  if (!(await verifyCommit(raw, trust, new Date())).ok) throw new Error('not verified');
  const firstMs = performance.now() - first;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++)
    if (!(await verifyCommit(raw, trust, new Date())).ok) throw new Error('not verified');
  console.log(
    `openpgp ${algo}: ${((performance.now() - t0) / rounds).toFixed(3)} ms per commit (${rounds} rounds; first ${firstMs.toFixed(1)} ms)`,
  );
}

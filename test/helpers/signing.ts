import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * Keys made by the real tools (ssh-keygen, gpg) and the `git -c …` arguments that make
 * `git commit -S` sign with them, so every signature a test verifies is the reference format.
 */
export interface SigningKey {
  format: 'ssh' | 'openpgp';
  /** `-c` settings for git (gpg.format, user.signingkey, gpg.program). */
  config: string[];
  /** Environment for git when it signs (GNUPGHOME). */
  env: Record<string, string>;
  /** SSH: the `SHA256:…` fingerprint; OpenPGP: the primary key's fingerprint. */
  fingerprint: string;
}

export interface SshKey extends SigningKey {
  /** The allowed_signers line for `principal` (options, e.g. valid-before="…", before the key). */
  allowed(principal: string, options?: string): string;
  path: string;
}

export async function sshKey(dir: string, name: string, type = 'ed25519', bits?: number): Promise<SshKey> {
  const path = join(dir, name);
  await exec('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', path]);
  const pub = (await readFile(`${path}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const fp = (await exec('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`])).stdout.split(' ')[1]!;
  return {
    format: 'ssh',
    path,
    config: ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${path}`],
    env: {},
    fingerprint: fp,
    allowed: (principal, options) => [principal, ...(options ? [options] : []), pub].join(' '),
  };
}

export interface GpgHome {
  home: string;
  /** A new key; `fakedTime` (gpg's --faked-system-time, e.g. 20200101T000000) makes it in the past. */
  key(
    uid: string,
    opts?: { algo?: string; expire?: string; subkey?: boolean; fakedTime?: string },
  ): Promise<SigningKey & { uid: string }>;
  /** Revokes a key with the revocation certificate gpg made for it. */
  revoke(fingerprint: string): Promise<void>;
  /** The armored public keys of `fingerprints` (all keys when none is given). */
  exportPublic(...fingerprints: string[]): Promise<string>;
}

export async function gpgHome(dir: string): Promise<GpgHome> {
  const home = join(dir, 'gnupg');
  await mkdir(home, { recursive: true, mode: 0o700 });
  const gpg = async (...args: string[]) =>
    (
      await exec('gpg', ['--batch', '--passphrase', '', '--pinentry-mode', 'loopback', ...args], {
        env: { ...process.env, GNUPGHOME: home },
      })
    ).stdout;
  const fingerprintOf = async (uid: string) =>
    /^fpr:+([0-9A-F]{40}):/m.exec(await gpg('--with-colons', '--list-keys', uid))![1]!;
  return {
    home,
    async key(uid, opts = {}) {
      const faked = opts.fakedTime ? ['--faked-system-time', opts.fakedTime] : [];
      const usage = opts.subkey ? 'cert' : 'sign';
      await gpg(
        ...faked,
        '--quick-gen-key',
        uid,
        opts.algo ?? 'ed25519',
        usage,
        opts.subkey ? '0' : (opts.expire ?? '1y'),
      );
      const fingerprint = await fingerprintOf(uid);
      if (opts.subkey)
        await gpg(...faked, '--quick-add-key', fingerprint, opts.algo ?? 'ed25519', 'sign', opts.expire ?? '1y');
      const config = ['-c', 'gpg.format=openpgp', '-c', `user.signingkey=${fingerprint}`];
      if (opts.fakedTime) {
        // gpg signs "in the past" too, so the signature falls inside the old key's lifetime.
        const program = join(dir, `gpg-${fingerprint.slice(-8)}`);
        await writeFile(program, `#!/bin/sh\nexec gpg --faked-system-time ${opts.fakedTime} "$@"\n`, { mode: 0o755 });
        config.push('-c', `gpg.program=${program}`);
      }
      return { format: 'openpgp', config, env: { GNUPGHOME: home }, fingerprint, uid };
    },
    async revoke(fingerprint) {
      const cert = await readFile(join(home, 'openpgp-revocs.d', `${fingerprint}.rev`), 'utf8');
      const file = join(dir, `${fingerprint}.rev`);
      await writeFile(file, cert.replace(/^:-----/m, '-----'));
      await gpg('--import', file);
    },
    exportPublic: (...fingerprints) => gpg('--armor', '--export', ...fingerprints),
  };
}

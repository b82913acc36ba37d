import { createHash } from 'node:crypto';
import { readFile, stat } from '../files.js';
import type { AgentConfig } from '../config/load.js';
import { StewardError } from '../errors.js';
import { parseAllowedSigners, splitSignedCommit, verifySshSignature, type AllowedSigner } from './sshsig.js';

/**
 * `source.verify`: who may sign what a host applies. The keys come from the files the config
 * names, read when the context is built (again on SIGHUP); `digest` changes when they do, so a
 * verdict remembered for a revision is only reused while the same keys would give it.
 */
export interface Trust {
  digest: string;
  ssh?: { file: string; signers: AllowedSigner[] };
  pgp?: { file: string; keys: PgpKey[] };
}

/** Who signed a revision, as the status and the logs name them. */
export interface Signer {
  format: 'ssh' | 'openpgp';
  /** SSH: SHA256:… of the key; OpenPGP: the primary key's fingerprint (hex). */
  fingerprint: string;
  /** SSH: the allowed_signers principal; OpenPGP: the key's primary user ID. */
  principal: string;
}

export type CommitVerdict =
  { ok: true; signer: Signer } | { ok: false; code: 'E_GIT_UNSIGNED' | 'E_GIT_SIGNATURE'; reason: string };

type OpenPgp = typeof import('openpgp');
type PgpKey = Awaited<ReturnType<OpenPgp['readKeys']>>[number];

/** OpenPGP.js is about 1 MB of code: loaded only by a host that verifies OpenPGP signatures. */
let openpgp: Promise<OpenPgp> | undefined;
const loadOpenPgp = () => (openpgp ??= import('openpgp'));

/** Reads the key files `source.verify` names; undefined when verification is off. Errors name the file and line. */
export async function loadTrust(config: AgentConfig): Promise<Trust | undefined> {
  const v = config.source.verify;
  if (!v) return undefined;
  const hash = createHash('sha256');
  const trust: Omit<Trust, 'digest'> = {};
  if (v.allowedSignersFile) {
    const text = await readKeyFile(config, v.allowedSignersFile, '/source/verify/allowedSignersFile');
    hash.update(`ssh\0${text}\0`);
    const { signers, errors } = parseAllowedSigners(text);
    if (errors.length > 0)
      throw new StewardError('E_CONFIG_INVALID', `${v.allowedSignersFile}: ${errors.join('; ')}`, {
        file: v.allowedSignersFile,
        pointer: '/source/verify/allowedSignersFile',
      });
    trust.ssh = { file: v.allowedSignersFile, signers };
  }
  if (v.gpgKeysFile) {
    const text = await readKeyFile(config, v.gpgKeysFile, '/source/verify/gpgKeysFile');
    hash.update(`pgp\0${text}\0`);
    const pgp = await loadOpenPgp();
    let keys: PgpKey[];
    try {
      keys = await pgp.readKeys({ armoredKeys: text });
    } catch (err) {
      throw new StewardError(
        'E_CONFIG_INVALID',
        `${v.gpgKeysFile} is not a file of armored OpenPGP public keys: ${(err as Error).message}`,
        { file: v.gpgKeysFile, pointer: '/source/verify/gpgKeysFile' },
      );
    }
    if (keys.some((k) => k.isPrivate()))
      throw new StewardError(
        'E_CONFIG_INVALID',
        `${v.gpgKeysFile} holds a private key; give only public keys (gpg --armor --export)`,
        { file: v.gpgKeysFile, pointer: '/source/verify/gpgKeysFile' },
      );
    trust.pgp = { file: v.gpgKeysFile, keys };
  }
  return { digest: hash.digest('hex').slice(0, 16), ...trust };
}

/** Key files are small (a key is a few KiB): a larger file is a mistake, refused before it is read. */
const MAX_KEY_FILE_BYTES = 4 * 1024 * 1024;

async function readKeyFile(config: AgentConfig, file: string, pointer: string): Promise<string> {
  try {
    const size = (await stat(file)).size;
    if (size > MAX_KEY_FILE_BYTES)
      throw new StewardError('E_CONFIG_INVALID', `${file} is ${size} bytes; a key file may hold at most 4 MiB`, {
        file: config.file,
        pointer,
      });
    return await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof StewardError) throw err;
    throw new StewardError(
      'E_CONFIG_READ',
      `cannot read ${file} (${pointer.slice(1).replaceAll('/', '.')}): ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { file: config.file, pointer, cause: err },
    );
  }
}

/**
 * The verdict on one raw commit object: signed, by a key the trust lists, over exactly these
 * bytes. SSH signatures are checked at the committer's time against valid-after/valid-before
 * (as `git verify-commit` has ssh-keygen do); OpenPGP as gpg does: the key and the subkey that
 * signed must be neither revoked nor expired now, and must have been valid when it signed.
 */
export async function verifyCommit(raw: Buffer, trust: Trust, now: Date): Promise<CommitVerdict> {
  const commit = splitSignedCommit(raw);
  const sig = commit.signature;
  if (!sig) return { ok: false, code: 'E_GIT_UNSIGNED', reason: 'the commit is not signed' };
  const bad = (reason: string) => ({ ok: false, code: 'E_GIT_SIGNATURE', reason }) as const;
  if (sig.startsWith('-----BEGIN SSH SIGNATURE-----')) {
    if (!trust.ssh) return bad('it carries an SSH signature and source.verify has no allowedSignersFile');
    const v = verifySshSignature(`${sig}\n`, commit.payload, trust.ssh.signers, commit.committedAt ?? now);
    if (!v.ok)
      return bad(
        v.fingerprint && !v.reason.includes(v.fingerprint) ? `SSH key ${v.fingerprint}: ${v.reason}` : v.reason,
      );
    return { ok: true, signer: { format: 'ssh', fingerprint: v.fingerprint, principal: v.principal } };
  }
  if (sig.startsWith('-----BEGIN PGP SIGNATURE-----')) {
    if (!trust.pgp) return bad('it carries an OpenPGP signature and source.verify has no gpgKeysFile');
    return verifyPgp(`${sig}\n`, commit.payload, trust.pgp.keys, now);
  }
  return bad('its signature is in a format Steward does not verify (only OpenPGP and SSH signatures are)');
}

async function verifyPgp(armored: string, payload: Buffer, keys: PgpKey[], now: Date): Promise<CommitVerdict> {
  const pgp = await loadOpenPgp();
  const bad = (reason: string) => ({ ok: false, code: 'E_GIT_SIGNATURE', reason }) as const;
  let signature;
  try {
    signature = await pgp.readSignature({ armoredSignature: armored });
  } catch (err) {
    return bad(`its OpenPGP signature cannot be read: ${(err as Error).message}`);
  }
  const keyIds = signature.getSigningKeyIDs().map((id) => id.toHex().toUpperCase());
  const key = keys.find((k) => k.getKeys().some((sub) => keyIds.includes(sub.getKeyID().toHex().toUpperCase())));
  if (!key) return bad(`signed by OpenPGP key ${keyIds.join(', ') || '(no key ID)'}, which gpgKeysFile does not list`);
  const name = `OpenPGP key ${key.getFingerprint().toUpperCase()}`;
  // OpenPGP.js checks the key at the signature's own time; gpg (and git verify-commit with it)
  // also refuses a key that has expired or been revoked since.
  if (await key.isRevoked(undefined, undefined, now)) return bad(`${name} is revoked`);
  const expires = await key.getExpirationTime();
  if (expires instanceof Date && expires <= now) return bad(`${name} expired on ${expires.toISOString()}`);
  // The signing key (the primary key or a subkey) must still be fit to sign now: not revoked, not expired.
  const signing = key.getKeys().find((sub) => keyIds.includes(sub.getKeyID().toHex().toUpperCase()))!;
  try {
    await key.getSigningKey(signing.getKeyID(), now);
  } catch (err) {
    return bad(
      `${name}: its signing key ${signing.getKeyID().toHex().toUpperCase()} is not valid now (${(err as Error).message})`,
    );
  }
  try {
    const message = await pgp.createMessage({ binary: payload });
    const result = await pgp.verify({ message, signature, verificationKeys: [key], expectSigned: true });
    await result.signatures[0]!.verified;
  } catch (err) {
    return bad(`${name}: ${(err as Error).message}`);
  }
  const user = await key.getPrimaryUser(now).catch(() => undefined);
  return {
    ok: true,
    signer: {
      format: 'openpgp',
      fingerprint: key.getFingerprint().toUpperCase(),
      principal: user?.user.userID?.userID ?? '',
    },
  };
}

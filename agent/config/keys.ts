import { readFile } from '../files.js';
import { StewardError } from '../errors.js';
import { SopsError, type DataKeys, type SopsMeta } from '../manifest/sops.js';
import { resolveCredentialPath, type AgentConfig } from './load.js';

/**
 * The keys that open SOPS files on this host (`secrets.ageKeyFile`, `secrets.pgpKeyFile`). The
 * age reference implementation for JavaScript (age-encryption) and OpenPGP.js are loaded only
 * when a key file of theirs is configured. What is printed of a key is its public half: the age
 * recipient, the OpenPGP fingerprint.
 */
type Age = typeof import('age-encryption');
type OpenPgp = typeof import('openpgp');
type PrivateKey = Awaited<ReturnType<OpenPgp['readPrivateKeys']>>[number];

/** The largest key file read: a few identities or an armored key are a few KiB. */
const MAX_KEY_FILE = 1024 * 1024;

export class SecretKeys implements DataKeys {
  private constructor(
    private readonly age: { lib: Age; identities: string[]; recipients: string[] } | undefined,
    private readonly pgp: { lib: OpenPgp; keys: PrivateKey[]; fingerprints: string[] } | undefined,
  ) {}

  /** Reads the configured key files; a missing, unreadable or malformed one is E_SECRET_KEY naming it. */
  static async load(config: Pick<AgentConfig, 'file' | 'secrets'>): Promise<SecretKeys> {
    const s = config.secrets ?? {};
    const age = s.ageKeyFile ? await readAgeIdentities(config, s.ageKeyFile) : undefined;
    const pgp = s.pgpKeyFile ? await readPgpKeys(config, s.pgpKeyFile) : undefined;
    return new SecretKeys(age, pgp);
  }

  /** "age age1…, pgp FBC7…": the public halves, for messages and `steward doctor`. */
  describe(): string {
    const parts = [
      ...(this.age?.recipients.map((r) => `age ${r}`) ?? []),
      ...(this.pgp?.fingerprints.map((f) => `pgp ${f}`) ?? []),
    ];
    return parts.length > 0 ? parts.join(', ') : 'no keys (set secrets.ageKeyFile or secrets.pgpKeyFile)';
  }

  /** The 32-byte data key of a file, from its age or PGP recipients; else a SopsError naming them. */
  async unwrap(meta: SopsMeta): Promise<Buffer> {
    if (this.age)
      for (const entry of meta.age) {
        const key = await this.#openAge(entry.enc).catch(() => undefined);
        if (key) return dataKey(key, `age ${entry.recipient}`);
      }
    if (this.pgp)
      for (const entry of meta.pgp) {
        const key = await this.#openPgp(entry.enc).catch(() => undefined);
        if (key) return dataKey(key, `pgp ${entry.fp}`);
      }
    const for_ = [...meta.age.map((a) => `age ${a.recipient}`), ...meta.pgp.map((p) => `pgp ${p.fp}`)];
    throw new SopsError(
      `no key on this host opens it: encrypted for ${for_.join(', ') || 'no age or pgp recipient'}; this host has ${this.describe()}`,
    );
  }

  async #openAge(armored: string): Promise<Uint8Array> {
    const { lib, identities } = this.age!;
    const d = new lib.Decrypter();
    for (const id of identities) d.addIdentity(id);
    const bytes = armored.includes('-----BEGIN AGE') ? lib.armor.decode(armored) : Buffer.from(armored, 'base64');
    return d.decrypt(bytes, 'uint8array');
  }

  async #openPgp(armored: string): Promise<Uint8Array> {
    const { lib, keys } = this.pgp!;
    const message = await lib.readMessage({ armoredMessage: armored });
    const { data } = await lib.decrypt({ message, decryptionKeys: keys, format: 'binary' });
    return data as Uint8Array;
  }
}

function dataKey(bytes: Uint8Array, from: string): Buffer {
  if (bytes.length !== 32) throw new SopsError(`the data key from ${from} is ${bytes.length} bytes, not 32`);
  return Buffer.from(bytes);
}

async function readKeyFile(config: Pick<AgentConfig, 'file'>, name: string, pointer: string): Promise<string> {
  const file = resolveCredentialPath(name);
  const fail = (reason: string, cause?: unknown) =>
    new StewardError('E_SECRET_KEY', `${pointer.slice(1).replace('/', '.')} ${file}: ${reason}`, {
      file: config.file,
      pointer,
      ...(cause ? { cause } : {}),
    });
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  if (bytes.length > MAX_KEY_FILE) throw fail(`is larger than ${MAX_KEY_FILE} bytes: not a key file`);
  return bytes.toString('utf8');
}

/** age-keygen's format: `AGE-SECRET-KEY-1…` lines, `#` comments; a bad line is named by number only. */
async function readAgeIdentities(config: Pick<AgentConfig, 'file'>, name: string) {
  const pointer = '/secrets/ageKeyFile';
  const text = await readKeyFile(config, name, pointer);
  const lib = await import('age-encryption');
  const identities: string[] = [];
  const recipients: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const recipient = /^AGE-SECRET-KEY-/.test(line)
      ? await lib.identityToRecipient(line).catch(() => undefined)
      : undefined;
    if (!recipient)
      throw new StewardError(
        'E_SECRET_KEY',
        `secrets.ageKeyFile ${resolveCredentialPath(name)}: line ${i + 1} is not an age identity (AGE-SECRET-KEY-1…)`,
        { file: config.file, pointer },
      );
    identities.push(line);
    recipients.push(recipient);
  }
  if (identities.length === 0)
    throw new StewardError('E_SECRET_KEY', `secrets.ageKeyFile ${resolveCredentialPath(name)}: no age identity in it`, {
      file: config.file,
      pointer,
    });
  return { lib, identities, recipients };
}

/** Armored OpenPGP private keys, usable without a passphrase. */
async function readPgpKeys(config: Pick<AgentConfig, 'file'>, name: string) {
  const pointer = '/secrets/pgpKeyFile';
  const text = await readKeyFile(config, name, pointer);
  const lib = await import('openpgp');
  const where = `secrets.pgpKeyFile ${resolveCredentialPath(name)}`;
  let keys: PrivateKey[];
  try {
    keys = await lib.readPrivateKeys({ armoredKeys: text });
  } catch {
    throw new StewardError('E_SECRET_KEY', `${where}: not an armored OpenPGP private key`, {
      file: config.file,
      pointer,
    });
  }
  const locked = keys.find((k) => !k.isDecrypted());
  if (locked)
    throw new StewardError(
      'E_SECRET_KEY',
      `${where}: key ${locked.getFingerprint().toUpperCase()} is protected by a passphrase; export it without one for the host`,
      { file: config.file, pointer },
    );
  return { lib, keys, fingerprints: keys.map((k) => k.getFingerprint().toUpperCase()) };
}

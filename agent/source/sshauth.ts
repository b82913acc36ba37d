import { readFile, stat } from '../files.js';
import type { AgentConfig } from '../config/load.js';
import { Secret } from '../config/secret.js';
import { StewardError } from '../errors.js';
import { parseKnownHosts, type KnownHost } from './knownhosts.js';
import { fingerprintOf } from './sshsig.js';

/** What the SSH transport authenticates with and checks the server against. */
export interface SshAuth {
  /** The private key's text: only ever handed to ssh2. */
  key: Secret;
  /** SHA256:… of the key's public half: what messages name. */
  fingerprint: string;
  knownHosts: KnownHost[];
}

type Ssh2 = typeof import('ssh2');
/** ssh2 (its crypto, its protocol) is loaded only by a host whose source is SSH. */
let ssh2: Promise<Ssh2> | undefined;
export const loadSsh2 = (): Promise<Ssh2> =>
  (ssh2 ??= import('ssh2').then((m) => ((m as { default?: Ssh2 }).default ?? m) as Ssh2));

/** Neither file is ever this large; a bigger one is a mistake, refused before it is read. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads source.auth.sshKeyFile (`keyFile`, already resolved against $CREDENTIALS_DIRECTORY) and
 * source.auth.knownHostsFile. Errors name the file and the field and never carry key material.
 */
export async function readSshAuth(
  config: Pick<AgentConfig, 'file'>,
  keyFile: string,
  knownHostsFile: string,
): Promise<SshAuth> {
  const keyText = await readBounded(config, keyFile, '/source/auth/sshKeyFile');
  const { utils } = await loadSsh2();
  const parsed = utils.parseKey(keyText);
  const bad = (reason: string) =>
    new StewardError('E_CONFIG_INVALID', `the SSH key ${keyFile} ${reason}`, {
      file: config.file,
      pointer: '/source/auth/sshKeyFile',
    });
  if (parsed instanceof Error)
    throw bad(
      /passphrase/i.test(parsed.message)
        ? 'is protected by a passphrase; a deploy key for an unattended agent has none (ssh-keygen -p -N "" -f FILE)'
        : `cannot be read as an OpenSSH private key (${parsed.message})`,
    );
  const key = Array.isArray(parsed) ? parsed[0]! : parsed;
  if (!key.isPrivateKey()) throw bad('is a public key; sshKeyFile is the private half (the file without .pub)');
  const knownText = await readBounded(config, knownHostsFile, '/source/auth/knownHostsFile');
  const { entries, errors } = parseKnownHosts(knownText.toString('utf8'));
  const where = { file: config.file, pointer: '/source/auth/knownHostsFile' };
  if (errors.length > 0)
    throw new StewardError('E_CONFIG_INVALID', `${knownHostsFile}: ${errors.slice(0, 3).join('; ')}`, where);
  if (entries.length === 0) throw new StewardError('E_CONFIG_INVALID', `${knownHostsFile} lists no host key`, where);
  return {
    key: new Secret(keyText.toString('utf8')),
    fingerprint: fingerprintOf(key.getPublicSSH()),
    knownHosts: entries,
  };
}

async function readBounded(config: Pick<AgentConfig, 'file'>, file: string, pointer: string): Promise<Buffer> {
  try {
    const info = await stat(file);
    if (info.size > MAX_FILE_BYTES)
      throw new StewardError('E_CONFIG_INVALID', `${file} is ${info.size} bytes; more than 4 MiB is not a key file`, {
        file: config.file,
        pointer,
      });
    return await readFile(file);
  } catch (err) {
    if (err instanceof StewardError) throw err;
    throw new StewardError('E_CONFIG_READ', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      file: config.file,
      pointer,
      cause: err,
    });
  }
}

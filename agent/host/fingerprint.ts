import { createHash, createHmac, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { mkdir, readFile } from '../files.js';
import { writeFileAtomic } from './fs.js';

/**
 * Fingerprints of content and env values: HMAC-SHA-256 under a key that never leaves this host
 * (stateDir/fingerprint.key, 0600), so a fingerprint in state.json, a plan or a container label
 * cannot be brute-forced back into a short secret, and the same content on two hosts does not
 * show as the same value. `legacy` is the plain sha256 earlier versions stored: accepted as
 * "unchanged" so an upgrade does not recreate every container.
 */
export class Fingerprint {
  constructor(private readonly key: Buffer) {}

  of(data: string | Uint8Array, length = 16): string {
    return createHmac('sha256', this.key).update(data).digest('hex').slice(0, length);
  }

  /** The same fingerprint as of(), of data fed in pieces. */
  hasher(length = 16): { update(data: Uint8Array): void; digest(): string } {
    const hmac = createHmac('sha256', this.key);
    return { update: (data) => void hmac.update(data), digest: () => hmac.digest('hex').slice(0, length) };
  }

  static legacy(data: string | Uint8Array, length = 16): string {
    return createHash('sha256').update(data).digest('hex').slice(0, length);
  }
}

const KEY_FILE = 'fingerprint.key';

/** The host's fingerprint key, made on first use. */
export async function loadFingerprint(stateDir: string): Promise<Fingerprint> {
  const file = join(stateDir, KEY_FILE);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const hex = text?.trim();
  if (hex && /^[0-9a-f]{64}$/.test(hex)) return new Fingerprint(Buffer.from(hex, 'hex'));
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  await writeFileAtomic(file, `${key.toString('hex')}\n`, { mode: 0o600 });
  return new Fingerprint(key);
}

import { createHmac } from 'node:crypto';
import { fingerprintOf } from './sshsig.js';

/**
 * OpenSSH known_hosts (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT), for the SSH transport's host key
 * check: plain and hashed (`|1|salt|hmac`, what `ssh-keygen -H` writes) host fields, `[host]:port`
 * for a port other than 22, `*` / `?` wildcards and `!` negation, `@revoked` markers. There is
 * no trust on first use: a host that is not listed is refused. Pure: no file is read here.
 */
export interface KnownHost {
  /** The host field's patterns (plain), or the salt and HMAC-SHA1 of one name (hashed). */
  hosts: { patterns: string[] } | { salt: Buffer; hash: Buffer };
  marker?: 'revoked' | 'cert-authority';
  type: string;
  key: Buffer;
  line: number;
}

export type HostKeyVerdict = { ok: true; line: number } | { ok: false; reason: string; fingerprint: string };

/** Reads a known_hosts file; lines it cannot read are errors with their number (the rest still count). */
export function parseKnownHosts(text: string): { entries: KnownHost[]; errors: string[] } {
  const entries: KnownHost[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHost['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift()!.slice(1) as never;
    const [hostField, type, b64] = fields;
    if (!hostField || !type || !b64) return void errors.push(`line ${i + 1}: expected hosts, a key type and a key`);
    const key = Buffer.from(b64, 'base64');
    if (key.length < 4 || key.subarray(4, 4 + key.readUInt32BE(0)).toString('latin1') !== type)
      return void errors.push(`line ${i + 1}: the key is not a ${type} key`);
    const hashed = /^\|1\|([A-Za-z0-9+/=]+)\|([A-Za-z0-9+/=]+)$/.exec(hostField);
    const hosts = hashed
      ? { salt: Buffer.from(hashed[1]!, 'base64'), hash: Buffer.from(hashed[2]!, 'base64') }
      : { patterns: hostField.split(',') };
    entries.push({ hosts, ...(marker ? { marker } : {}), type, key, line: i + 1 });
  });
  return { entries, errors };
}

/** The name a host is listed under: `host` on port 22, `[host]:port` otherwise (as ssh looks it up). */
export const hostName = (host: string, port: number): string => (port === 22 ? host : `[${host}]:${port}`);

/** Does the entry's host field name `name`? */
export function matchesHost(entry: KnownHost, name: string): boolean {
  if ('salt' in entry.hosts) return createHmac('sha1', entry.hosts.salt).update(name).digest().equals(entry.hosts.hash);
  let matched = false;
  for (const p of entry.hosts.patterns) {
    const negated = p.startsWith('!');
    if (!wildcard(negated ? p.slice(1) : p).test(name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function wildcard(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** The key types listed for `name`: what the client should ask the server to present. */
export function listedTypes(entries: readonly KnownHost[], name: string): string[] {
  return [...new Set(entries.filter((e) => !e.marker && matchesHost(e, name)).map((e) => e.type))];
}

/** Is `key` (the server's host key blob) listed for `host`:`port`, and not revoked? */
export function checkHostKey(entries: readonly KnownHost[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = hostName(host, port);
  const fingerprint = fingerprintOf(key);
  const type = key.subarray(4, 4 + key.readUInt32BE(0)).toString('latin1');
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(key));
  if (revoked)
    return { ok: false, fingerprint, reason: `the host key ${fingerprint} is marked @revoked (line ${revoked.line})` };
  const forHost = entries.filter((e) => !e.marker && matchesHost(e, name));
  const same = forHost.find((e) => e.key.equals(key));
  if (same) return { ok: true, line: same.line };
  if (forHost.length === 0)
    return {
      ok: false,
      fingerprint,
      reason: `${name} is not in knownHostsFile (it presented ${type} ${fingerprint}); add its key, Steward never trusts on first use`,
    };
  return {
    ok: false,
    fingerprint,
    reason: `the host key of ${name} has changed: it presented ${type} ${fingerprint}, knownHostsFile lists another at line ${forHost.map((e) => e.line).join(', ')} (a reinstalled server, or someone in the middle)`,
  };
}

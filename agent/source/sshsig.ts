import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * SSH signatures on Git commits (`gpg.format=ssh`): the armored `sshsig` blob git writes into the
 * commit's `gpgsig` header (OpenSSH PROTOCOL.sshsig), checked with node's crypto against an
 * OpenSSH allowed_signers file, as `git verify-commit` does through `ssh-keygen -Y verify`:
 * namespace "git", the key listed for a principal, `valid-after`/`valid-before` at the
 * committer's time. ed25519, ECDSA (P-256, P-384, P-521) and RSA (rsa-sha2-256/512) keys.
 * Pure: no file is read here, nothing is run.
 */

export interface AllowedSigner {
  principals: string[];
  namespaces?: string[];
  validAfter?: Date;
  validBefore?: Date;
  /** The key's wire blob, as in authorized_keys. */
  key: Buffer;
  /** The line it came from, for messages. */
  line: number;
}

export type SshVerdict =
  { ok: true; fingerprint: string; principal: string } | { ok: false; fingerprint?: string; reason: string };

const MAGIC = Buffer.from('SSHSIG');
const ARMOR = /^-----BEGIN SSH SIGNATURE-----\n([\s\S]*?)\n-----END SSH SIGNATURE-----\n?$/;

/** "SHA256:<base64>" of a key blob, as ssh-keygen -l prints it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Reads an allowed_signers file (ssh-keygen(1), ALLOWED SIGNERS); lines it cannot read are errors with their number. */
export function parseAllowedSigners(text: string): { signers: AllowedSigner[]; errors: string[] } {
  const signers: AllowedSigner[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    try {
      signers.push(parseSignerLine(line, i + 1));
    } catch (err) {
      errors.push(`line ${i + 1}: ${(err as Error).message}`);
    }
  });
  return { signers, errors };
}

function parseSignerLine(line: string, n: number): AllowedSigner {
  const fields = splitFields(line);
  const principals = fields.shift()!.split(',');
  const signer: Partial<AllowedSigner> = { principals, line: n };
  // Options are one field, comma-separated as in authorized_keys: valid-after="…",namespaces="git".
  const options = fields.length > 0 && !/^(ssh-|ecdsa-sha2-|sk-)/.test(fields[0]!) ? fields.shift()! : '';
  for (const opt of options ? [...options.matchAll(/(?:[^,"]+|"[^"]*")+/g)].map((m) => m[0]) : []) {
    const m = /^([a-z-]+)(?:="(.*)")?$/i.exec(opt);
    if (!m) throw new Error(`cannot read option ${JSON.stringify(opt)}`);
    const [, name, value] = m;
    if (name === 'namespaces' && value !== undefined) signer.namespaces = value.split(',');
    else if (name === 'valid-after' && value !== undefined) signer.validAfter = sshTime(value);
    else if (name === 'valid-before' && value !== undefined) signer.validBefore = sshTime(value);
    else if (name === 'cert-authority') throw new Error('cert-authority keys are not supported');
    else throw new Error(`unknown option ${JSON.stringify(name)}`);
  }
  const [type, b64] = fields;
  if (!type || !b64 || !/^(ssh-|ecdsa-sha2-|sk-)/.test(type))
    throw new Error('expected principals, [options,] a key type and a key');
  const key = Buffer.from(b64, 'base64');
  if (readString(key, 0).value.toString('latin1') !== type) throw new Error(`the key is not a ${type} key`);
  return { ...signer, key } as AllowedSigner;
}

/** Splits on spaces outside double quotes (option values may hold spaces). */
function splitFields(line: string): string[] {
  return [...line.matchAll(/(?:[^\s"]+|"[^"]*")+/g)].map((m) => m[0]);
}

/** YYYYMMDD[HHMM[SS]], local time unless it ends in Z (ssh-keygen's rule). */
function sshTime(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(text);
  if (!m) throw new Error(`cannot read the time ${JSON.stringify(text)}`);
  const [, y, mo, d, h = '00', mi = '00', s = '00', z] = m;
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  return z ? new Date(Date.UTC(...parts)) : new Date(...parts);
}

/**
 * Verifies an armored SSH signature over `payload` (the commit without its gpgsig header) at
 * `when` (the committer's time) against the allowed signers.
 */
export function verifySshSignature(
  armored: string,
  payload: Buffer,
  signers: readonly AllowedSigner[],
  when: Date,
): SshVerdict {
  let sig: ReturnType<typeof parseSshsig>;
  try {
    sig = parseSshsig(armored);
  } catch (err) {
    return { ok: false, reason: `the SSH signature cannot be read: ${(err as Error).message}` };
  }
  const fingerprint = fingerprintOf(sig.publicKey);
  if (sig.namespace !== 'git')
    return { ok: false, fingerprint, reason: `signed for namespace "${sig.namespace}", not "git"` };
  const listed = signers.filter((s) => s.key.equals(sig.publicKey));
  if (listed.length === 0) return { ok: false, fingerprint, reason: `key ${fingerprint} is not in allowedSignersFile` };
  const why = listed.map((s) => {
    if (s.namespaces && !s.namespaces.includes('git')) return `not for namespace "git" (line ${s.line})`;
    if (s.validAfter && when < s.validAfter) return `valid-after ${s.validAfter.toISOString()} (line ${s.line})`;
    if (s.validBefore && when >= s.validBefore) return `valid-before ${s.validBefore.toISOString()} (line ${s.line})`;
    return undefined;
  });
  const inTime = listed.filter((_, i) => why[i] === undefined);
  if (inTime.length === 0)
    return {
      ok: false,
      fingerprint,
      reason: `key ${fingerprint} is listed in allowedSignersFile but not for a commit made at ${when.toISOString()}: ${why.join('; ')}`,
    };
  const hash = createHash(sig.hashAlgorithm).update(payload).digest();
  const signed = Buffer.concat([
    MAGIC,
    sshString(Buffer.from(sig.namespace)),
    sshString(sig.reserved),
    sshString(Buffer.from(sig.hashAlgorithm)),
    sshString(hash),
  ]);
  let good: boolean;
  try {
    good = checkKeySignature(sig.publicKey, sig.signature, signed);
  } catch (err) {
    return { ok: false, fingerprint, reason: `the SSH signature cannot be checked: ${(err as Error).message}` };
  }
  if (!good) return { ok: false, fingerprint, reason: `the signature by ${fingerprint} does not match the commit` };
  return { ok: true, fingerprint, principal: inTime[0]!.principals[0]! };
}

function parseSshsig(armored: string) {
  const m = ARMOR.exec(armored.replace(/\r\n/g, '\n').trim() + '\n');
  if (!m) throw new Error('not an armored SSH signature');
  const blob = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  if (!blob.subarray(0, 6).equals(MAGIC)) throw new Error('no SSHSIG magic');
  if (blob.readUInt32BE(6) !== 1) throw new Error(`version ${blob.readUInt32BE(6)} is not 1`);
  let at = 10;
  const next = () => {
    const s = readString(blob, at);
    at = s.end;
    return s.value;
  };
  const publicKey = next();
  const namespace = next().toString('utf8');
  const reserved = next();
  const hashAlgorithm = next().toString('latin1');
  const signature = next();
  if (hashAlgorithm !== 'sha512' && hashAlgorithm !== 'sha256')
    throw new Error(`hash algorithm ${JSON.stringify(hashAlgorithm)} is not sha256 or sha512`);
  return { publicKey, namespace, reserved, hashAlgorithm, signature };
}

/** Checks one SSH signature blob (string algorithm, string signature) made by `key` over `data`. */
function checkKeySignature(key: Buffer, sigBlob: Buffer, data: Buffer): boolean {
  const type = readString(key, 0);
  const keyType = type.value.toString('latin1');
  const algo = readString(sigBlob, 0);
  const sig = readString(sigBlob, algo.end).value;
  const algorithm = algo.value.toString('latin1');
  if (keyType === 'ssh-ed25519') {
    if (algorithm !== 'ssh-ed25519') throw new Error(`an ed25519 key cannot make a ${algorithm} signature`);
    return verify(null, data, ed25519Key(readString(key, type.end).value), sig);
  }
  const ecdsa = /^ecdsa-sha2-nistp(256|384|521)$/.exec(keyType);
  if (ecdsa) {
    if (algorithm !== keyType) throw new Error(`an ${keyType} key cannot make a ${algorithm} signature`);
    const bits = ecdsa[1]!;
    const point = readString(key, readString(key, type.end).end).value;
    const size = Math.ceil(Number(bits) / 8);
    const r = readString(sig, 0);
    const s = readString(sig, r.end);
    const p1363 = Buffer.concat([fixed(r.value, size), fixed(s.value, size)]);
    const hash = bits === '256' ? 'sha256' : bits === '384' ? 'sha384' : 'sha512';
    return verify(hash, data, { key: ecKey(point, bits), dsaEncoding: 'ieee-p1363' }, p1363);
  }
  if (keyType === 'ssh-rsa') {
    const hash = algorithm === 'rsa-sha2-512' ? 'sha512' : algorithm === 'rsa-sha2-256' ? 'sha256' : undefined;
    if (!hash) throw new Error(`RSA signature algorithm ${algorithm} is not accepted (SHA-1)`);
    const e = readString(key, type.end);
    const n = readString(key, e.end);
    return verify(hash, data, rsaKey(n.value, e.value), sig);
  }
  throw new Error(`key type ${keyType} is not supported`);
}

const b64url = (b: Buffer) => b.toString('base64url');
const unsigned = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b);

function ed25519Key(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(raw) }, format: 'jwk' });
}

function ecKey(point: Buffer, bits: string): KeyObject {
  if (point[0] !== 4) throw new Error('the ECDSA key is not an uncompressed point');
  const size = (point.length - 1) / 2;
  const crv = bits === '256' ? 'P-256' : bits === '384' ? 'P-384' : 'P-521';
  return createPublicKey({
    key: { kty: 'EC', crv, x: b64url(point.subarray(1, 1 + size)), y: b64url(point.subarray(1 + size)) },
    format: 'jwk',
  });
}

function rsaKey(n: Buffer, e: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: b64url(unsigned(n)), e: b64url(unsigned(e)) }, format: 'jwk' });
}

/** An mpint as exactly `size` big-endian bytes. */
function fixed(mpint: Buffer, size: number): Buffer {
  const v = unsigned(mpint);
  if (v.length > size) throw new Error('an ECDSA signature value is too long');
  return Buffer.concat([Buffer.alloc(size - v.length), v]);
}

function readString(buf: Buffer, at: number): { value: Buffer; end: number } {
  if (at + 4 > buf.length) throw new Error('truncated');
  const len = buf.readUInt32BE(at);
  if (at + 4 + len > buf.length) throw new Error('truncated');
  return { value: buf.subarray(at + 4, at + 4 + len), end: at + 4 + len };
}

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/**
 * A raw commit split into the payload that was signed (every header but `gpgsig`, and the
 * message) and the signature; undefined signature for an unsigned commit. Also the committer's time.
 */
export function splitSignedCommit(raw: Buffer): { payload: Buffer; signature?: string; committedAt?: Date } {
  // Headers are read byte for byte (latin1); the message is kept as the bytes it is.
  const end = raw.indexOf('\n\n');
  const headers = (end < 0 ? raw : raw.subarray(0, end + 1)).toString('latin1');
  const body = end < 0 ? Buffer.alloc(0) : raw.subarray(end + 1);
  const kept: string[] = [];
  let signature: string[] | undefined;
  let inSig = false;
  for (const line of headers.split('\n').slice(0, -1)) {
    if (line.startsWith(' ') && inSig) {
      signature!.push(line.slice(1));
      continue;
    }
    inSig = line.startsWith('gpgsig ');
    if (inSig) signature = [line.slice('gpgsig '.length)];
    else kept.push(line);
  }
  const committer = kept.find((l) => l.startsWith('committer '));
  const ts = committer ? /> (\d+) [+-]\d{4}$/.exec(committer) : null;
  return {
    payload: Buffer.concat([Buffer.from(kept.map((l) => `${l}\n`).join(''), 'latin1'), body]),
    ...(signature ? { signature: signature.join('\n') } : {}),
    ...(ts ? { committedAt: new Date(Number(ts[1]) * 1000) } : {}),
  };
}

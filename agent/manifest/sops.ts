import { createDecipheriv, createHash, timingSafeEqual } from 'node:crypto';

/**
 * The SOPS envelope (issue 13, first part: YAML/JSON trees; not wired into File or envFrom yet):
 * every leaf value `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` is AES-256-GCM under the
 * document's 32-byte data key, with the leaf's path joined by `:` plus a trailing `:` as
 * additional data (list items take their list's path); the MAC is SHA-512 over every leaf value
 * in document order, upper-case hex, encrypted with `lastmodified` as additional data. Checked
 * against files the real sops wrote (../shared/interop/sops, test/manifest/sops.test.ts).
 * Errors never carry a decrypted value or the data key.
 */

export class SopsError extends Error {
  readonly code = 'E_SECRET_DECRYPT';
}

type Leaf = string | number | boolean | null;
export type Tree = Leaf | Tree[] | { [key: string]: Tree };

interface Encrypted {
  data: Buffer;
  iv: Buffer;
  tag: Buffer;
  type: string;
}

const ENC = /^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:(\w+)\]$/;

export const isEncrypted = (v: unknown): v is string => typeof v === 'string' && v.startsWith('ENC[');

function parseEnc(value: string, where: string): Encrypted {
  const m = ENC.exec(value);
  if (!m) throw new SopsError(`${where}: a malformed ENC[...] value`);
  const [, data, iv, tag, type] = m;
  const tagBytes = Buffer.from(tag!, 'base64');
  if (tagBytes.length !== 16) throw new SopsError(`${where}: the GCM tag is not 16 bytes`);
  return { data: Buffer.from(data!, 'base64'), iv: Buffer.from(iv!, 'base64'), tag: tagBytes, type: type! };
}

/** One value's plaintext bytes; a wrong key or a tampered value, IV, tag or path fails here. */
function openValue(enc: Encrypted, key: Buffer, aad: string, where: string): Buffer {
  try {
    const d = createDecipheriv('aes-256-gcm', key, enc.iv, { authTagLength: 16 });
    d.setAAD(Buffer.from(aad, 'utf8'));
    d.setAuthTag(enc.tag);
    return Buffer.concat([d.update(enc.data), d.final()]);
  } catch {
    throw new SopsError(`${where}: does not decrypt (a tampered value, or another data key)`);
  }
}

function typed(plain: Buffer, type: string, where: string): Leaf {
  const text = plain.toString('utf8');
  switch (type) {
    case 'str':
    case 'bytes':
    case 'comment':
      return text;
    case 'int':
    case 'float': {
      const n = Number(text);
      if (!Number.isFinite(n)) throw new SopsError(`${where}: a ${type} that is not a number`);
      return n;
    }
    case 'bool':
      if (text !== 'True' && text !== 'False' && text !== 'true' && text !== 'false')
        throw new SopsError(`${where}: a bool that is not True or False`);
      return text.toLowerCase() === 'true';
    default:
      throw new SopsError(`${where}: unknown value type "${type}"`);
  }
}

/** The bytes a leaf contributes to the MAC (sops hashes the value as it prints it). */
function macBytes(v: Leaf, plain?: Buffer): Buffer {
  if (plain) return plain;
  if (typeof v === 'boolean') return Buffer.from(v ? 'True' : 'False');
  return Buffer.from(v === null ? '' : String(v), 'utf8');
}

/**
 * Decrypts every encrypted leaf of `tree` (the document without its `sops` key) with `key` and
 * checks the MAC against `mac` (the ENC value of sops.mac) and `lastmodified`. All or nothing:
 * the first failure throws, naming the path, never the value.
 */
export function decryptTree(
  tree: Tree,
  key: Buffer,
  mac: string,
  lastmodified: string,
  unencryptedSuffix = '_unencrypted',
): Tree {
  const hash = createHash('sha512');
  const walk = (node: Tree, path: string[], plainBranch: boolean): Tree => {
    if (Array.isArray(node)) return node.map((item) => walk(item, path, plainBranch));
    if (node !== null && typeof node === 'object')
      return Object.fromEntries(
        Object.entries(node).map(([k, v]) => [k, walk(v, [...path, k], plainBranch || k.endsWith(unencryptedSuffix))]),
      );
    const where = path.join('.') || '(root)';
    if (!plainBranch && isEncrypted(node)) {
      const enc = parseEnc(node, where);
      const plain = openValue(enc, key, path.map((p) => `${p}:`).join(''), where);
      if (enc.type !== 'comment') hash.update(macBytes(null, plain));
      return typed(plain, enc.type, where);
    }
    hash.update(macBytes(node));
    return node;
  };
  const out = walk(tree, [], false);
  const expected = openValue(parseEnc(mac, 'sops.mac'), key, lastmodified, 'sops.mac (with sops.lastmodified)');
  const actual = Buffer.from(hash.digest('hex').toUpperCase());
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual))
    throw new SopsError('sops.mac does not match the values: the file was changed after it was encrypted');
  return out;
}

/** What a SOPS file's metadata says: the MAC, and the data key wrapped for each recipient. */
export interface SopsMeta {
  mac: string;
  lastmodified: string;
  unencryptedSuffix: string;
  pgp: Array<{ fp: string; enc: string }>;
  age: Array<{ recipient: string; enc: string }>;
}

/**
 * A dotenv file as sops writes it: `KEY=VALUE` lines split at the first `=` (spaces kept on both
 * sides, as sops' dotenv store does), `#` lines are comments, and the metadata is flattened into
 * `sops_…` keys (`sops_pgp__list_0__map_enc`, values with `\n` escaped).
 */
export function readSopsDotenv(text: string): { tree: Record<string, string>; meta: SopsMeta } {
  const tree: Record<string, string> = {};
  const flat: Record<string, string> = {};
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const at = line.indexOf('=');
    if (at < 0) throw new SopsError(`line ${i + 1}: not KEY=VALUE`);
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    if (key.startsWith('sops_')) flat[key.slice('sops_'.length)] = value.replace(/\\n/g, '\n');
    else tree[key] = value;
  });
  return { tree, meta: flatMeta(flat) };
}

/** Metadata flattened as sops' dotenv and INI stores write it (`pgp__list_0__map_enc`). */
function flatMeta(flat: Record<string, string>): SopsMeta {
  if (!flat.mac || !flat.lastmodified) throw new SopsError('no sops metadata (mac, lastmodified): not a SOPS file');
  const lists = (name: string) => {
    const items: Array<Record<string, string>> = [];
    for (const [k, v] of Object.entries(flat)) {
      const m = new RegExp(`^${name}__list_(\\d+)__map_(\\w+)$`).exec(k);
      if (m) (items[Number(m[1])] ??= {})[m[2]!] = v;
    }
    return items.filter(Boolean);
  };
  return {
    mac: flat.mac,
    lastmodified: flat.lastmodified,
    unencryptedSuffix: flat.unencrypted_suffix ?? '_unencrypted',
    pgp: lists('pgp').map((p) => ({ fp: p.fp ?? '', enc: p.enc ?? '' })),
    age: lists('age').map((a) => ({ recipient: a.recipient ?? '', enc: a.enc ?? '' })),
  };
}

import { createDecipheriv, createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, YAMLMap, YAMLSeq } from 'yaml';

/**
 * The SOPS envelope, as the sops tool writes it (checked against files the real sops wrote:
 * ../shared/interop/sops, test/manifest/sops.test.ts). Every leaf value
 * `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` is AES-256-GCM under the file's 32-byte data key,
 * with the leaf's path (each key followed by `:`, list items taking their list's path) as
 * additional data; the MAC is SHA-512 over the leaf values in document order (as sops' ToBytes
 * prints them: booleans `True`/`False`), upper-case hex, encrypted with `lastmodified` as
 * additional data. Every format (YAML, JSON, dotenv, INI, binary) is read into a yaml Document,
 * so order and comments are kept and one walk serves them all. Errors name the file's path inside
 * the document, never a value or the data key.
 */

export class SopsError extends Error {
  readonly code = 'E_SECRET_DECRYPT';
}

export type SopsFormat = 'yaml' | 'json' | 'dotenv' | 'ini' | 'binary';

/** sops picks the store by the file name: .yaml/.yml, .json, .env, .ini, anything else binary. */
export function sopsFormatOf(path: string): SopsFormat {
  const ext = /\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase();
  return ext === 'yaml' || ext === 'yml'
    ? 'yaml'
    : ext === 'json' || ext === 'env' || ext === 'ini'
      ? fmt(ext)
      : 'binary';
}
const fmt = (ext: 'json' | 'env' | 'ini'): SopsFormat => (ext === 'env' ? 'dotenv' : ext);

/** Which keys' values are encrypted: sops' unencrypted_/encrypted_ suffix and regex options. */
export interface SopsRules {
  unencryptedSuffix?: string;
  encryptedSuffix?: string;
  unencryptedRegex?: RegExp;
  encryptedRegex?: RegExp;
}

/** What a SOPS file's metadata says: the MAC, the value rules, the data key wrapped per recipient. */
export interface SopsMeta {
  mac: string;
  lastmodified: string;
  rules: SopsRules;
  macOnlyEncrypted: boolean;
  pgp: Array<{ fp: string; enc: string }>;
  age: Array<{ recipient: string; enc: string }>;
}

/** Unwraps a file's data key with a key this host holds; throws a SopsError naming the recipients. */
export interface DataKeys {
  unwrap(meta: SopsMeta): Promise<Buffer>;
}

/** A document of any format as a yaml Document, with its sops metadata taken out. */
export interface SopsFile {
  format: SopsFormat;
  doc: Document;
  meta?: SopsMeta;
}

const ENC = /^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:(\w+)\]$/;

export const isEncrypted = (v: unknown): v is string => typeof v === 'string' && v.startsWith('ENC[');

/**
 * Reads a file in its format (plain or SOPS). `meta` is present when the file carries sops
 * metadata; a file that has some but not a MAC and lastmodified is refused.
 */
export function readSopsFile(path: string, text: string): SopsFile {
  const format = sopsFormatOf(path);
  if (format === 'dotenv') return flatFile(format, readDotenv(text));
  if (format === 'ini') return flatFile(format, readIni(text));
  const doc = parseDocument(text, { uniqueKeys: true, strict: true, logLevel: 'error' });
  if (doc.errors.length > 0)
    throw new SopsError(
      `not valid ${format === 'binary' ? 'JSON' : format.toUpperCase()}: ${doc.errors[0]!.message.split('\n')[0]}`,
    );
  if (format !== 'binary' && doc.contents !== null && !isMap(doc.contents))
    throw new SopsError(`a ${format.toUpperCase()} file for sops is a mapping at the top`);
  const raw = isMap(doc.contents) ? doc.contents.get('sops', true) : undefined;
  if (raw === undefined) {
    if (format === 'binary') throw new SopsError('not a SOPS file (no "sops" metadata)');
    return { format, doc };
  }
  (doc.contents as YAMLMap).delete('sops');
  if (format === 'binary' && !isEncrypted((doc.contents as YAMLMap).get('data')))
    throw new SopsError('a binary SOPS file holds its content in "data"');
  return { format, doc, meta: treeMeta(isMap(raw) ? (raw.toJSON() as unknown) : undefined) };
}

/** The metadata of a YAML or JSON file (a `sops` mapping); one key group at most. */
function treeMeta(raw: unknown): SopsMeta {
  if (!raw || typeof raw !== 'object') throw new SopsError('"sops" is not a mapping');
  const m = raw as Record<string, unknown>;
  const groups = Array.isArray(m.key_groups) ? (m.key_groups as Array<Record<string, unknown>>) : undefined;
  if (groups && groups.length > 1)
    throw new SopsError(`key groups with a Shamir threshold (${groups.length} groups) are not supported`);
  const source = groups?.[0] ?? m;
  const list = (v: unknown) => (Array.isArray(v) ? (v as Array<Record<string, unknown>>) : []);
  return metaFrom({
    ...m,
    pgp: list(source.pgp).map((p) => ({ fp: String(p.fp ?? ''), enc: String(p.enc ?? '') })),
    age: list(source.age).map((a) => ({ recipient: String(a.recipient ?? ''), enc: String(a.enc ?? '') })),
  });
}

function metaFrom(m: Record<string, unknown>): SopsMeta {
  if (typeof m.mac !== 'string' || typeof m.lastmodified !== 'string')
    throw new SopsError('the sops metadata has no mac or lastmodified');
  const regex = (name: string) => {
    const v = m[name];
    if (typeof v !== 'string' || v === '') return undefined;
    try {
      return new RegExp(v);
    } catch {
      throw new SopsError(`sops.${name} is not a regular expression this agent can read`);
    }
  };
  const text = (name: string) => (typeof m[name] === 'string' && m[name] !== '' ? (m[name] as string) : undefined);
  const rules: SopsRules = {
    ...(text('unencrypted_suffix') ? { unencryptedSuffix: text('unencrypted_suffix') } : {}),
    ...(text('encrypted_suffix') ? { encryptedSuffix: text('encrypted_suffix') } : {}),
    ...(regex('unencrypted_regex') ? { unencryptedRegex: regex('unencrypted_regex') } : {}),
    ...(regex('encrypted_regex') ? { encryptedRegex: regex('encrypted_regex') } : {}),
  };
  if (Object.keys(rules).length === 0) rules.unencryptedSuffix = '_unencrypted';
  return {
    mac: m.mac,
    lastmodified: m.lastmodified,
    rules,
    macOnlyEncrypted: m.mac_only_encrypted === true || m.mac_only_encrypted === 'true',
    pgp: m.pgp as SopsMeta['pgp'],
    age: m.age as SopsMeta['age'],
  };
}

/** Metadata flattened as sops' dotenv and INI stores write it (`pgp__list_0__map_enc`). */
function flatMeta(flat: Record<string, string>): SopsMeta {
  const lists = (name: string) => {
    const items: Array<Record<string, string>> = [];
    for (const [k, v] of Object.entries(flat)) {
      const m = new RegExp(`^${name}__list_(\\d+)__map_(\\w+)$`).exec(k);
      if (m) (items[Number(m[1])] ??= {})[m[2]!] = v;
    }
    return items.filter(Boolean);
  };
  if (Object.keys(flat).some((k) => k.startsWith('key_groups__list_1')))
    throw new SopsError('key groups with a Shamir threshold are not supported');
  return metaFrom({
    ...flat,
    pgp: lists('pgp').map((p) => ({ fp: p.fp ?? '', enc: p.enc ?? '' })),
    age: lists('age').map((a) => ({ recipient: a.recipient ?? '', enc: a.enc ?? '' })),
  });
}

function flatFile(format: SopsFormat, read: { doc: Document; flat?: Record<string, string> }): SopsFile {
  return { format, doc: read.doc, ...(read.flat ? { meta: flatMeta(read.flat) } : {}) };
}

/**
 * dotenv as sops reads it: `KEY=VALUE` split at the first `=` (spaces kept on both sides), `#`
 * lines are comments, metadata in `sops_…` keys with `\n` escaped.
 */
function readDotenv(text: string): { doc: Document; flat?: Record<string, string> } {
  const map = new YAMLMap();
  const flat: Record<string, string> = {};
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const at = line.indexOf('=');
    if (at < 0) throw new SopsError(`line ${i + 1}: not KEY=VALUE`);
    const key = line.slice(0, at);
    const value = line.slice(at + 1).replace(/\\n/g, '\n');
    if (key.startsWith('sops_')) flat[key.slice('sops_'.length)] = value;
    else if (map.has(key)) throw new SopsError(`line ${i + 1}: ${JSON.stringify(key)} is set twice`);
    else map.set(key, new Scalar(value));
  });
  return docOf(map, flat);
}

/** INI as sops reads it: `[section]`, `key = value` (trimmed), `;`/`#` comments; metadata in `[sops]`. */
function readIni(text: string): { doc: Document; flat?: Record<string, string> } {
  const map = new YAMLMap();
  const flat: Record<string, string> = {};
  let section: YAMLMap | undefined;
  let inSops = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      inSops = head[1] === 'sops';
      if (!inSops && map.has(head[1])) throw new SopsError(`line ${i + 1}: section [${head[1]}] appears twice`);
      if (!inSops) map.set(head[1], (section = new YAMLMap()));
      return;
    }
    const at = line.indexOf('=');
    if (at < 0) throw new SopsError(`line ${i + 1}: not key = value`);
    const key = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (inSops) flat[key] = value.replace(/\\n/g, '\n');
    else if (!section) throw new SopsError(`line ${i + 1}: a key outside any [section]`);
    else section.set(key, new Scalar(value));
  });
  return docOf(map, flat);
}

function docOf(map: YAMLMap, flat: Record<string, string>) {
  const doc = new Document();
  doc.contents = map;
  return { doc, ...(Object.keys(flat).length > 0 ? { flat } : {}) };
}

/**
 * Decrypts a SOPS file in place with the data key `keys` unwraps, MAC checked: all or nothing,
 * the first failure throws. Returns the document as `sops -d` gives it, in its own format.
 */
export async function decryptSops(file: SopsFile, keys: DataKeys): Promise<Buffer> {
  if (!file.meta) throw new SopsError('not a SOPS file (no sops metadata)');
  const key = await keys.unwrap(file.meta);
  decryptDocument(file, key);
  return emitDocument(file);
}

/** Decrypts every encrypted value of the document with the data key and checks the MAC. */
export function decryptDocument(file: SopsFile, key: Buffer): void {
  const meta = file.meta!;
  const walk = new Walk(key, meta);
  walk.comments(file.doc, []);
  walk.node(file.doc.contents, []);
  const expected = openValue(
    parseEnc(meta.mac, 'sops.mac'),
    key,
    meta.lastmodified,
    'sops.mac (with sops.lastmodified)',
  );
  const actual = Buffer.from(walk.hash.digest('hex').toUpperCase());
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual))
    throw new SopsError('sops.mac does not match the values: the file was changed after it was encrypted');
}

/** One pass over the document: decrypts leaves (and comments) in place, hashing them for the MAC. */
class Walk {
  readonly hash: Hash = createHash('sha512');
  constructor(
    private readonly key: Buffer,
    private readonly meta: SopsMeta,
  ) {}

  node(node: unknown, path: string[]): void {
    this.comments(node, path);
    if (isMap(node))
      for (const pair of node.items) {
        const k = String(isScalar(pair.key) ? pair.key.value : pair.key);
        this.comments(pair.key, path);
        if (pair.value !== null && pair.value !== undefined) this.node(pair.value, [...path, k]);
      }
    else if (isSeq(node)) for (const item of node.items) this.node(item, path);
    else if (isScalar(node)) this.leaf(node, path);
  }

  leaf(node: Scalar, path: string[]): void {
    const where = path.join('.') || '(root)';
    const encrypted = isEncryptedPath(path, this.meta.rules);
    if (encrypted) {
      if (!isEncrypted(node.value))
        throw new SopsError(
          `${where}: not encrypted, though the file's sops rules say it is (a value replaced in plaintext?)`,
        );
      const enc = parseEnc(node.value, where);
      const bytes = openValue(enc, this.key, aad(path), where);
      this.hash.update(bytes);
      node.value = typed(bytes, enc.type, where);
      node.type = undefined;
      return;
    }
    if (!this.meta.macOnlyEncrypted) this.hash.update(macBytes(node.value));
  }

  /** Comments sops encrypted (`#ENC[…,type:comment]`): not in the MAC; kept as they are if they do not open. */
  comments(node: unknown, path: string[]): void {
    const n = node as { commentBefore?: string | null; comment?: string | null } | null;
    if (!n || typeof n !== 'object') return;
    for (const field of ['commentBefore', 'comment'] as const) {
      const text = n[field];
      if (typeof text !== 'string' || !text.includes('ENC[')) continue;
      n[field] = text
        .split('\n')
        .map((line) => {
          const m = ENC.exec(line.trim());
          if (!m || m[4] !== 'comment') return line;
          try {
            return openValue(parseEnc(line.trim(), 'comment'), this.key, aad(path), 'comment').toString('utf8');
          } catch {
            return line;
          }
        })
        .join('\n');
    }
  }
}

/**
 * Checks a SOPS file without its key (`steward validate` without --age-key-file/--pgp-key-file):
 * a recipient to open it, armored data keys, a well-formed MAC and every value that the rules say
 * is encrypted in ENC[...] form.
 */
export function checkSopsStructure(file: SopsFile): void {
  const meta = file.meta;
  if (!meta) throw new SopsError('not a SOPS file (no sops metadata)');
  if (meta.age.length + meta.pgp.length === 0) throw new SopsError('no age or pgp recipient in its sops metadata');
  for (const a of meta.age)
    if (!/^age1[0-9a-z]+$/.test(a.recipient) || !a.enc.includes('-----BEGIN AGE ENCRYPTED FILE-----'))
      throw new SopsError(`the age recipient ${JSON.stringify(a.recipient)} has no armored data key`);
  for (const p of meta.pgp)
    if (!/^[0-9A-Fa-f]{16,40}$/.test(p.fp) || !p.enc.includes('-----BEGIN PGP MESSAGE-----'))
      throw new SopsError(`the pgp recipient ${JSON.stringify(p.fp)} has no armored data key`);
  parseEnc(meta.mac, 'sops.mac');
  const visit = (node: unknown, path: string[]): void => {
    if (isMap(node))
      for (const pair of node.items)
        visit(pair.value, [...path, String(isScalar(pair.key) ? pair.key.value : pair.key)]);
    else if (isSeq(node)) for (const item of node.items) visit(item, path);
    else if (isScalar(node) && isEncryptedPath(path, meta.rules)) {
      const where = path.join('.') || '(root)';
      if (!isEncrypted(node.value))
        throw new SopsError(`${where}: not encrypted, though the file's sops rules say it is`);
      parseEnc(node.value, where);
    }
  };
  visit(file.doc.contents, []);
}

/** A YAML or JSON document that is a SOPS file's (a top-level `sops` mapping with a mac): data, not a manifest. */
export function isSopsDocument(v: unknown): boolean {
  const sops = v && typeof v === 'object' && !Array.isArray(v) ? (v as { sops?: unknown }).sops : undefined;
  return !!sops && typeof sops === 'object' && typeof (sops as { mac?: unknown }).mac === 'string';
}

const aad = (path: string[]) => path.map((p) => `${p}:`).join('');

/**
 * Whether the value at a path is encrypted under the file's rules: with encrypted_suffix or
 * encrypted_regex, only below a key that matches; otherwise everywhere but below a key that
 * matches unencrypted_suffix or unencrypted_regex (default suffix `_unencrypted`).
 */
function isEncryptedPath(path: string[], r: SopsRules): boolean {
  if (r.encryptedSuffix || r.encryptedRegex)
    return path.some((k) => (r.encryptedSuffix && k.endsWith(r.encryptedSuffix)) || r.encryptedRegex?.test(k));
  return !path.some((k) => (r.unencryptedSuffix && k.endsWith(r.unencryptedSuffix)) || r.unencryptedRegex?.test(k));
}

interface Encrypted {
  data: Buffer;
  iv: Buffer;
  tag: Buffer;
  type: string;
}

function parseEnc(value: string, where: string): Encrypted {
  const m = ENC.exec(value);
  if (!m) throw new SopsError(`${where}: a malformed ENC[...] value`);
  const [, data, iv, tag, type] = m;
  const tagBytes = Buffer.from(tag!, 'base64');
  if (tagBytes.length !== 16) throw new SopsError(`${where}: the GCM tag is not 16 bytes`);
  return { data: Buffer.from(data!, 'base64'), iv: Buffer.from(iv!, 'base64'), tag: tagBytes, type: type! };
}

/** One value's plaintext bytes; a wrong key or a tampered value, IV, tag or path fails here. */
function openValue(enc: Encrypted, key: Buffer, additional: string, where: string): Buffer {
  try {
    const d = createDecipheriv('aes-256-gcm', key, enc.iv, { authTagLength: 16 });
    d.setAAD(Buffer.from(additional, 'utf8'));
    d.setAuthTag(enc.tag);
    return Buffer.concat([d.update(enc.data), d.final()]);
  } catch {
    throw new SopsError(`${where}: does not decrypt (a tampered value, or another data key)`);
  }
}

function typed(plain: Buffer, type: string, where: string): string | number | boolean {
  const text = plain.toString('utf8');
  switch (type) {
    case 'str':
    case 'bytes':
    case 'comment':
      return text;
    case 'int':
    case 'float': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw new SopsError(`${where}: a ${type} that is not a number`);
      return n;
    }
    case 'bool':
      if (!/^(true|false)$/i.test(text)) throw new SopsError(`${where}: a bool that is not True or False`);
      return text.toLowerCase() === 'true';
    default:
      throw new SopsError(`${where}: unknown value type "${type}"`);
  }
}

/** The bytes an unencrypted leaf adds to the MAC, as sops' ToBytes prints it. */
function macBytes(v: unknown): Buffer {
  if (typeof v === 'boolean') return Buffer.from(v ? 'True' : 'False');
  if (typeof v === 'number' && Number.isInteger(v) && Number.isSafeInteger(v)) return Buffer.from(BigInt(v).toString());
  return Buffer.from(v === null || v === undefined ? '' : String(v), 'utf8');
}

/** The decrypted document in its own format: YAML (indent 4 as sops), JSON (tab), dotenv, INI, binary. */
export function emitDocument(file: SopsFile): Buffer {
  const { doc, format } = file;
  switch (format) {
    case 'yaml':
      return Buffer.from(doc.toString({ indent: 4, lineWidth: 0 }));
    case 'json':
      return Buffer.from(`${JSON.stringify(doc.toJS(), null, '\t')}\n`);
    case 'binary':
      return Buffer.from(String((doc.contents as YAMLMap).get('data') ?? ''), 'utf8');
    case 'dotenv':
      return Buffer.from(
        flatEntries(doc)
          .map(([k, v]) => `${k}=${v.replace(/\n/g, '\\n')}\n`)
          .join(''),
      );
    case 'ini':
      return Buffer.from(
        (doc.contents as YAMLMap).items.map((s) => `[${keyText(s.key)}]\n${iniLines(s.value)}`).join('\n'),
      );
  }
}

function iniLines(section: unknown): string {
  if (!isMap(section)) return '';
  return section.items.map((p) => `${keyText(p.key)} = ${leafText(p.value)}\n`).join('');
}

const keyText = (k: unknown): string => String(isScalar(k) ? k.value : k);

const leafText = (v: unknown): string => {
  const x = isScalar(v) ? v.value : v;
  return typeof x === 'boolean' ? (x ? 'true' : 'false') : x === null || x === undefined ? '' : String(x);
};

/**
 * The top-level names and values of a map document (envFrom): scalars as text (numbers and
 * booleans as YAML writes them); a nested map or a list under a name is refused, naming it.
 */
export function flatEntries(doc: Document): Array<[string, string]> {
  const top = doc.contents;
  if (top === null || top === undefined) return [];
  if (!isMap(top)) throw new SopsError('not a mapping of names to values');
  return top.items.map((p) => {
    const k = keyText(p.key);
    if (p.value instanceof YAMLMap || p.value instanceof YAMLSeq)
      throw new SopsError(`${k}: a nested ${isMap(p.value) ? 'mapping' : 'list'}, not a value`);
    return [k, leafText(p.value)];
  });
}

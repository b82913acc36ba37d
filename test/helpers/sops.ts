import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/**
 * SOPS files for tests, with the data key wrapped by the real `age` CLI for a real `age-keygen`
 * identity. No sops binary exists for this machine (../shared/interop/sops has the files the real
 * sops wrote, for the formats it covers); the values here are encrypted the way sops' own source
 * does it (AES-256-GCM, 32-byte IV, path + ':' as additional data, ToBytes for the MAC: booleans
 * True/False), so typed values, nested maps and lists can be tested too. The agent's reader is
 * checked against the real sops files first (test/manifest/sops.test.ts).
 */
export interface AgeKey {
  /** The identity file, as age-keygen wrote it. */
  file: string;
  recipient: string;
}

export function ageKeygen(dir = mkdtempSync(join(tmpdir(), 'stw-age-'))): AgeKey {
  const file = join(dir, `key-${randomBytes(3).toString('hex')}.txt`);
  execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
  const recipient = /public key: (age1[0-9a-z]+)/.exec(readFileSync(file, 'utf8'))![1]!;
  return { file, recipient };
}

/** The data key wrapped for each recipient by `age -a -r`. */
export function ageWrap(dataKey: Buffer, recipients: string[]): Array<{ recipient: string; enc: string }> {
  return recipients.map((recipient) => ({
    recipient,
    enc: execFileSync('age', ['-a', '-r', recipient], { input: dataKey }).toString('utf8'),
  }));
}

type Leaf = string | number | boolean;
type Tree = Leaf | Tree[] | { [key: string]: Tree };

export function encValue(value: Leaf, key: Buffer, aad: string): string {
  const type =
    typeof value === 'boolean'
      ? 'bool'
      : typeof value === 'number'
        ? Number.isInteger(value)
          ? 'int'
          : 'float'
        : 'str';
  const iv = randomBytes(32);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const data = Buffer.concat([c.update(toBytes(value)), c.final()]);
  return `ENC[AES256_GCM,data:${data.toString('base64')},iv:${iv.toString('base64')},tag:${c.getAuthTag().toString('base64')},type:${type}]`;
}

const toBytes = (v: Leaf) => Buffer.from(typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v));

export interface SopsOptions {
  dataKey?: Buffer;
  age?: string[];
  lastmodified?: string;
  unencryptedSuffix?: string;
}

/** Encrypts a tree as sops does: every leaf except under a key with the unencrypted suffix; MAC over all. */
function encryptTree(tree: Record<string, Tree>, key: Buffer, suffix: string) {
  const hash = createHash('sha512');
  const walk = (node: Tree, path: string[], plain: boolean): Tree => {
    if (Array.isArray(node)) return node.map((n) => walk(n, path, plain));
    if (typeof node === 'object')
      return Object.fromEntries(
        Object.entries(node).map(([k, v]) => [k, walk(v, [...path, k], plain || k.endsWith(suffix))]),
      );
    hash.update(toBytes(node));
    return plain ? node : encValue(node, key, path.map((p) => `${p}:`).join(''));
  };
  const out = walk(tree, [], false) as Record<string, Tree>;
  return { out, mac: hash.digest('hex').toUpperCase() };
}

function meta(o: SopsOptions, mac: string, key: Buffer) {
  const lastmodified = o.lastmodified ?? '2026-12-01T10:00:00Z';
  return {
    age: ageWrap(key, o.age ?? []),
    lastmodified,
    mac: encValue(mac, key, lastmodified),
    unencrypted_suffix: o.unencryptedSuffix ?? '_unencrypted',
    version: '3.9.0',
  };
}

/** A SOPS YAML (or, with json: true, JSON) document of `tree`. */
export function sopsTree(tree: Record<string, Tree>, o: SopsOptions = {}, json = false): string {
  const key = o.dataKey ?? randomBytes(32);
  const { out, mac } = encryptTree(tree, key, o.unencryptedSuffix ?? '_unencrypted');
  const doc = { ...out, sops: meta(o, mac, key) };
  return json ? `${JSON.stringify(doc, null, '\t')}\n` : stringify(doc, { indent: 4 });
}

/** A SOPS dotenv file of `entries`: KEY=ENC[...] lines and the flattened sops_ metadata. */
export function sopsDotenv(entries: Record<string, string>, o: SopsOptions = {}): string {
  const key = o.dataKey ?? randomBytes(32);
  const { out, mac } = encryptTree(entries, key, o.unencryptedSuffix ?? '_unencrypted');
  const m = meta(o, mac, key);
  const flat: Array<[string, string]> = [
    ...m.age.flatMap((a, i): Array<[string, string]> => [
      [`sops_age__list_${i}__map_enc`, a.enc.replace(/\n/g, '\\n')],
      [`sops_age__list_${i}__map_recipient`, a.recipient],
    ]),
    ['sops_lastmodified', m.lastmodified],
    ['sops_mac', m.mac],
    ['sops_unencrypted_suffix', m.unencrypted_suffix],
    ['sops_version', m.version],
  ];
  return [...Object.entries(out), ...flat].map(([k, v]) => `${k}=${String(v)}\n`).join('');
}

export function writeText(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

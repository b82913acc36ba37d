import t from 'tap';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { parse } from 'yaml';
import { decryptTree, readSopsDotenv, SopsError, type Tree } from '../../agent/manifest/sops.js';

// The SOPS envelope against files the real sops 3.13.1 wrote (test/fixtures/sops: a copy of ../shared/interop/sops, from the
// SOPS project's functional tests), data key unwrapped with their PGP test key by OpenPGP.js.
const dir = fileURLToPath(new URL('../fixtures/sops/', import.meta.url));
const keys = await openpgp.readPrivateKeys({
  armoredKeys: await readFile(`${dir}sops_functional_tests_key.asc`, 'utf8'),
});

interface Sops {
  mac: string;
  lastmodified: string;
  pgp: Array<{ enc: string; fp: string }>;
}

async function open(file: string): Promise<{ tree: Tree; sops: Sops; key: Buffer }> {
  const { sops, ...tree } = parse(await readFile(`${dir}${file}`, 'utf8')) as { sops: Sops } & Record<string, Tree>;
  const message = await openpgp.readMessage({ armoredMessage: sops.pgp[0]!.enc });
  const { data } = await openpgp.decrypt({ message, decryptionKeys: keys, format: 'binary' });
  return { tree, sops, key: Buffer.from(data as Uint8Array) };
}

t.test('YAML and JSON files written by sops decrypt to what sops -d gives, MAC checked', async (t) => {
  for (const file of ['format.enc.yaml', 'format.enc.json']) {
    const { tree, sops, key } = await open(file);
    t.equal(key.length, 32, `${file}: a 32-byte data key`);
    t.same(decryptTree(tree, key, sops.mac, sops.lastmodified), { foo: 'bar' }, file);
  }
});

t.test('a tampered value, MAC or lastmodified, or another key, is refused without the value', async (t) => {
  const { tree, sops, key } = await open('format.enc.yaml');
  const foo = (tree as { foo: string }).foo;
  const cases: Array<[string, () => Tree, RegExp]> = [
    [
      'value',
      () =>
        decryptTree(
          { foo: foo.replace(/data:(.)/, (_, c) => `data:${c === 'A' ? 'B' : 'A'}`) },
          key,
          sops.mac,
          sops.lastmodified,
        ),
      /^foo: does not decrypt/,
    ],
    ['path', () => decryptTree({ other: foo }, key, sops.mac, sops.lastmodified), /^other: does not decrypt/],
    [
      'lastmodified',
      () => decryptTree(tree, key, sops.mac, '2027-01-01T00:00:00Z'),
      /^sops\.mac \(with sops\.lastmodified\): does not decrypt/,
    ],
    ['mac', () => decryptTree(tree, key, sops.mac.replace(/data:(.)/, 'data:Z'), sops.lastmodified), /sops\.mac/],
    [
      'added value',
      () => decryptTree({ ...(tree as object), extra_unencrypted: 'x' }, key, sops.mac, sops.lastmodified),
      /sops\.mac does not match the values/,
    ],
    ['key', () => decryptTree(tree, Buffer.alloc(32, 7), sops.mac, sops.lastmodified), /^foo: does not decrypt/],
    [
      'malformed',
      () => decryptTree({ foo: 'ENC[AES256_GCM,data:xx' }, key, sops.mac, sops.lastmodified),
      /^foo: a malformed ENC/,
    ],
  ];
  for (const [what, run, message] of cases) {
    const err = (() => {
      try {
        run();
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof SopsError, `${what}: refused`);
    t.match((err as Error).message, message, what);
    t.notMatch((err as Error).message, 'bar', `${what}: no plaintext in the message`);
    t.equal((err as SopsError).code, 'E_SECRET_DECRYPT');
  }
});

t.test('a dotenv file written by sops: split at the first =, spaces kept, metadata unflattened', async (t) => {
  const { tree, meta } = readSopsDotenv(await readFile(`${dir}format.enc.env`, 'utf8'));
  t.same(Object.keys(tree), ['foo ']);
  t.equal(meta.pgp[0]?.fp, 'FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4');
  t.match(meta.pgp[0]?.enc, /^-----BEGIN PGP MESSAGE-----\n\n/);
  const message = await openpgp.readMessage({ armoredMessage: meta.pgp[0]!.enc });
  const { data } = await openpgp.decrypt({ message, decryptionKeys: keys, format: 'binary' });
  const plain = decryptTree(tree, Buffer.from(data as Uint8Array), meta.mac, meta.lastmodified, meta.unencryptedSuffix);
  t.same(plain, { 'foo ': ' bar' });
  t.throws(() => readSopsDotenv('A=1\n'), { code: 'E_SECRET_DECRYPT', message: /not a SOPS file/ });
});

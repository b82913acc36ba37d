import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SecretKeys } from '../../agent/config/keys.js';
import { formatError, StewardError } from '../../agent/errors.js';
import { checkSopsStructure, decryptSops, readSopsFile, SopsError } from '../../agent/manifest/sops.js';
import { ageKeygen, encValue, sopsDotenv, sopsTree } from '../helpers/sops.js';

// The SOPS envelope against files the real sops 3.13.1 wrote (test/fixtures/sops: a copy of
// ../shared/interop/sops, from the SOPS project's functional tests), data key unwrapped with their
// PGP test key through secrets.pgpKeyFile; and age-wrapped data keys made by the real age CLI.
const dir = fileURLToPath(new URL('../fixtures/sops/', import.meta.url));
const pgp = await SecretKeys.load({
  file: 'agent.yaml',
  secrets: { pgpKeyFile: `${dir}sops_functional_tests_key.asc` },
});
const tmp = mkdtempSync(join(tmpdir(), 'stw-sops-'));
const age = ageKeygen(tmp);
const ageKeys = await SecretKeys.load({ file: 'agent.yaml', secrets: { ageKeyFile: age.file } });

const decrypt = async (name: string, text: string, keys = pgp) =>
  (await decryptSops(readSopsFile(name, text), keys)).toString('utf8');

const refusal = async (run: () => Promise<unknown>): Promise<SopsError> => {
  try {
    await run();
  } catch (err) {
    return err as SopsError;
  }
  throw new Error('not refused');
};

t.test('every file the real sops wrote decrypts to what sops -d gives, in its own format', async (t) => {
  const want: Record<string, string> = {
    'format.enc.yaml': 'foo: bar\n',
    'format.enc.json': '{\n\t"foo": "bar"\n}\n',
    'format.enc.env': 'foo = bar\n',
    'format.enc.ini': '[foo]\nbar = baz\n',
  };
  for (const [file, text] of Object.entries(want))
    t.equal(await decrypt(file, await readFile(`${dir}${file}`, 'utf8')), text, file);
  t.match(pgp.describe(), /pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4/);
});

t.test('a tampered value, MAC or lastmodified, or no matching key, is refused without the value', async (t) => {
  const yaml = await readFile(`${dir}format.enc.yaml`, 'utf8');
  const flip = (text: string, field: RegExp) =>
    text.replace(field, (m) => m.slice(0, -1) + (m.endsWith('A') ? 'B' : 'A'));
  const cases: Array<[string, string, RegExp, SecretKeys?]> = [
    ['value', flip(yaml, /^foo: ENC\[AES256_GCM,data:../m), /^foo: does not decrypt/],
    ['mac', flip(yaml, /mac: ENC\[AES256_GCM,data:../), /^sops\.mac/],
    [
      'lastmodified',
      yaml.replace(/lastmodified: "[^"]+"/, 'lastmodified: "2027-01-01T00:00:00Z"'),
      /^sops\.mac \(with sops\.lastmodified\): does not decrypt/,
    ],
    ['added value', yaml.replace(/^foo:/m, 'extra: plain\nfoo:'), /^extra: not encrypted/],
    [
      'added unencrypted value',
      yaml.replace(/^foo:/m, 'extra_unencrypted: plain\nfoo:'),
      /sops\.mac does not match the values/,
    ],
    ['moved value', yaml.replace(/^foo:/m, 'other:'), /^other: does not decrypt/],
    ['malformed', yaml.replace(/^foo: ENC\[AES256_GCM,data:/m, 'foo: ENC[AES256_GCM,dat:'), /^foo: a malformed ENC/],
    [
      'another key',
      yaml,
      /no key on this host opens it: encrypted for pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4; this host has age age1/,
      ageKeys,
    ],
  ];
  for (const [what, text, message, keys] of cases) {
    const err = await refusal(() => decrypt('x.yaml', text, keys ?? pgp));
    t.ok(err instanceof SopsError, `${what}: refused`);
    t.match(err.message, message, what);
    t.notMatch(err.message, /\bbar\b/, `${what}: no plaintext in the message`);
    t.equal(err.code, 'E_SECRET_DECRYPT');
  }
});

t.test('age: typed values, nested maps, lists and unencrypted keys come back exactly', async (t) => {
  const tree = {
    db: { user: 'app', password: 'CANARY-db-9f3', port: 5432, ratio: 0.25, tls: true, replicas: ['a', 'b'] },
    debug: false,
    note_unencrypted: 'kept as written',
    empty: '',
  };
  const other = ageKeygen(tmp);
  const text = sopsTree(tree, { age: [other.recipient, age.recipient] });
  t.notMatch(text, /CANARY-db-9f3/, 'the secret is not in the encrypted file');
  t.match(text, /note_unencrypted: kept as written/);
  const out = await decrypt('db.yaml', text, ageKeys);
  t.same(parse(out), tree, 'every value with its type, in order');
  t.notMatch(out, /sops:/, 'no sops metadata in the decrypted document');
  const json = await decrypt('db.json', sopsTree(tree, { age: [age.recipient] }, true), ageKeys);
  t.same(JSON.parse(json), tree, 'JSON the same');
  const env = await decrypt(
    'db.env',
    sopsDotenv({ USER: 'app', PASSWORD: 'p=w d\nx' }, { age: [age.recipient] }),
    ageKeys,
  );
  t.equal(env, 'USER=app\nPASSWORD=p=w d\\nx\n', 'dotenv: split at the first =, newline escaped');
});

t.test('comments sops encrypted come back as comments; they are not in the MAC', async (t) => {
  const key = randomBytes(32);
  const note = encValue(' the database', key, '').replace('type:str]', 'type:comment]');
  const text = sopsTree({ db: 'x' }, { age: [age.recipient], dataKey: key }).replace(/^db:/m, `#${note}\ndb:`);
  t.match(text, /^#ENC\[AES256_GCM/m);
  t.equal(await decrypt('c.yaml', text, ageKeys), '# the database\ndb: x\n');
});

t.test('several identities in ageKeyFile: the one the file is for opens it', async (t) => {
  const a = ageKeygen(tmp);
  const b = ageKeygen(tmp);
  const both = join(tmp, 'both.txt');
  writeFileSync(both, `# two hosts' keys\n${await readFile(a.file, 'utf8')}\n${await readFile(b.file, 'utf8')}`);
  const keys = await SecretKeys.load({ file: 'agent.yaml', secrets: { ageKeyFile: both } });
  t.match(keys.describe(), new RegExp(`age ${a.recipient}, age ${b.recipient}`));
  t.equal(await decrypt('s.yaml', sopsTree({ k: 'v' }, { age: [b.recipient] }), keys), 'k: v\n');
});

t.test('a binary SOPS file gives back its bytes', async (t) => {
  const key = randomBytes(32);
  const doc = sopsTree({ data: '-----BEGIN PRIVATE KEY-----\nCANARY\n' }, { age: [age.recipient], dataKey: key }, true);
  t.equal(await decrypt('tls.key', doc, ageKeys), '-----BEGIN PRIVATE KEY-----\nCANARY\n');
});

t.test('the structure check needs no key: recipients, armored data keys, ENC values', async (t) => {
  const ok = readSopsFile('format.enc.yaml', await readFile(`${dir}format.enc.yaml`, 'utf8'));
  t.doesNotThrow(() => checkSopsStructure(ok));
  const text = sopsTree({ a: 'x' }, { age: [age.recipient] });
  const cases: Array<[string, string, RegExp]> = [
    ['no recipient', sopsTree({ a: 'x' }), /no age or pgp recipient/],
    ['plain value', text.replace(/^a: ENC\[[^\]]+\]/m, 'a: x'), /^a: not encrypted/],
    ['bad mac', text.replace(/mac: ENC\[AES256_GCM,data:/, 'mac: ENC[AES256_GCM,x:'), /sops\.mac: a malformed/],
    [
      'no data key',
      text.replace(/-----BEGIN AGE ENCRYPTED FILE-----/, '-----BEGIN NOTHING-----'),
      /has no armored data key/,
    ],
  ];
  for (const [what, bad, message] of cases)
    t.throws(() => checkSopsStructure(readSopsFile('s.yaml', bad)), { message }, what);
  t.throws(() => readSopsFile('s.yaml', 'a: [1'), { code: 'E_SECRET_DECRYPT', message: /^not valid YAML/ });
  t.throws(() => readSopsFile('s.env', 'no equals sign\n'), { message: /line 1: not KEY=VALUE/ });
  t.throws(() => readSopsFile('s.bin', '{"data": "x"}'), { message: /not a SOPS file/ });
});

t.test('a key file that is not one is refused, naming the line and never its text', async (t) => {
  const bad = join(tmp, 'bad.txt');
  writeFileSync(bad, '# ok\nAGE-SECRET-KEY-1NOTAKEYATALLBUTLONGENOUGHTOLOOKLIKEONE\n');
  const err = await SecretKeys.load({ file: 'agent.yaml', secrets: { ageKeyFile: bad } }).catch((e: unknown) => e);
  t.ok(err instanceof StewardError);
  t.equal((err as StewardError).code, 'E_SECRET_KEY');
  t.match(formatError(err as StewardError), /line 2 is not an age identity/);
  t.notMatch(formatError(err as StewardError), /NOTAKEY/);
  const missing = await SecretKeys.load({ file: 'agent.yaml', secrets: { pgpKeyFile: join(tmp, 'nope.asc') } }).catch(
    (e: unknown) => e,
  );
  t.match((missing as StewardError).message, /secrets\.pgpKeyFile .*nope\.asc: cannot be read \(ENOENT\)/);
  t.match(encValue('x', randomBytes(32), ''), /^ENC\[AES256_GCM,/);
});

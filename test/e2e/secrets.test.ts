import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { containerDoc, docker, uid } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';
import { gitOut } from '../helpers/git.js';
import { ageKeygen, sopsDotenv, sopsTree } from '../helpers/sops.js';

// Secrets end to end on the real engine and a real Git server: SOPS files whose data keys the
// real age CLI wrapped, a Container's envFrom and a File's decrypt: sops. The canaries must reach
// the container and the file and nothing else: no log line, no status commit, no state file, no
// plan, no label, no error.
const dir = await mkdtemp(join(tmpdir(), 'steward-secrets-'));
const root = join(dir, 'root');
const key = ageKeygen(dir);
const stranger = ageKeygen(dir);
const CANARY_ENV = `CANARY-env-${uid()}`;
const CANARY_FILE = `CANARY-file-${uid()}`;
const CANARY_NEXT = `CANARY-next-${uid()}`;
const canaries = [CANARY_ENV, CANARY_FILE, CANARY_NEXT];

const fx = fleetFixture(t);

const manifests = (host: string, name: string, extra: Record<string, unknown> = {}) => ({
  [`hosts/${host}/app.yaml`]: containerDoc(name, {
    image: 'local/busybox:1',
    env: { MODE: 'production' },
    envFrom: [{ source: '../../secrets/app.env', decrypt: 'sops' }, { source: '../../config/plain.json' }],
    ...extra,
  }),
  // Outside the host's path: a plain JSON map there would be read as a manifest.
  'config/plain.json': JSON.stringify({ REGION: 'eu-1', REPLICAS: 3 }),
  [`hosts/${host}/tls.yaml`]: JSON.stringify({
    apiVersion: 'steward/v1',
    kind: 'File',
    metadata: { name: 'tls' },
    spec: { path: join(root, 'tls', 'secret.yaml'), source: 'secret.enc.yaml', decrypt: 'sops', mode: '0600' },
  }),
  // A SOPS YAML inside the host's path is data for the File, not a manifest.
  [`hosts/${host}/secret.enc.yaml`]: sopsTree(
    { token: CANARY_FILE, port: 443, tls: { enabled: true } },
    { age: [key.recipient] },
  ),
});

async function envOf(name: string): Promise<string[]> {
  return (await docker.getContainer(name).inspect()).Config.Env;
}

/** Every file below a directory, as text. */
async function allText(top: string): Promise<string> {
  let out = '';
  for (const e of await readdir(top, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out += await readFile(join(e.parentPath, e.name), 'utf8').catch(() => '');
  return out;
}

t.test('envFrom and decrypt: sops reach the container and the file, and nothing else', async (t) => {
  const a = await fx.agent({ extra: `files: { roots: [${root}] }\nsecrets: { ageKeyFile: ${key.file} }` });
  const name = `app-${a.host}`;
  await fx.fleet.commit({
    ...manifests(a.host, name),
    'secrets/app.env': sopsDotenv({ DB_PASSWORD: CANARY_ENV, DB_USER: 'app' }, { age: [key.recipient] }),
  });
  let r = await a.once();
  t.equal(r.outcome.phase, 'Converged', JSON.stringify(r.outcome.bundleErrors));
  const env = await envOf(name);
  for (const v of ['MODE=production', `DB_PASSWORD=${CANARY_ENV}`, 'DB_USER=app', 'REGION=eu-1', 'REPLICAS=3'])
    t.ok(env.includes(v), `the container has ${v.split('=')[0]}`);
  const path = join(root, 'tls', 'secret.yaml');
  t.same(parse(await readFile(path, 'utf8')), { token: CANARY_FILE, port: 443, tls: { enabled: true } });
  t.equal((await stat(path)).mode & 0o777, 0o600, 'written with the File mode');

  // A new secret value: the container is recreated, and the reason says which field, not the value.
  await fx.fleet.commit({
    'secrets/app.env': sopsDotenv({ DB_PASSWORD: CANARY_NEXT, DB_USER: 'app' }, { age: [key.recipient] }),
  });
  const plan = await steward(['plan', '--config', a.configFile]);
  t.match(plan.stdout, new RegExp(`Container/${name}\\s+recreate\\s+env changed`));
  const planJson = await steward(['plan', '--config', a.configFile, '--json']);
  r = await a.once();
  t.equal(r.outcome.phase, 'Converged');
  t.ok((await envOf(name)).includes(`DB_PASSWORD=${CANARY_NEXT}`));

  const labels = JSON.stringify((await docker.getContainer(name).inspect()).Config.Labels);
  const status = await gitOut(fx.fleet.bare, 'log', '-p', '--all', '--', `hosts/${a.host}`);
  const places: Record<string, string> = {
    'log lines': JSON.stringify(a.logs),
    'status branch history': status,
    stateDir: await allText(a.stateDir),
    'plan output': plan.stdout + plan.stderr + planJson.stdout + planJson.stderr,
    'container labels': labels,
  };
  t.ok(status.length > 500, 'the status history was read');
  for (const [where, text] of Object.entries(places))
    for (const c of canaries) t.notOk(text.includes(c), `no canary in the ${where}`);
  // Fingerprints are keyed: the plain sha256 of the file's content is nowhere either.
  const plain = createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
  for (const [where, text] of Object.entries(places))
    t.notOk(text.includes(plain.slice(0, 12)), `no plain sha256 of the content in the ${where}`);
});

t.test('a tampered file, a missing key or a name set twice: Invalid, nothing on the host touched', async (t) => {
  const a = await fx.agent({ extra: `files: { roots: [${root}-2] }\nsecrets: { ageKeyFile: ${key.file} }` });
  const name = `app-${a.host}`;
  const spec = (over: Record<string, unknown> = {}) => ({
    [`hosts/${a.host}/app.yaml`]: containerDoc(name, {
      image: 'local/busybox:1',
      envFrom: [{ source: 'app.env', decrypt: 'sops' }],
      ...over,
    }),
  });
  const good = sopsDotenv({ TOKEN: CANARY_ENV }, { age: [key.recipient] });
  await fx.fleet.commit({ ...spec(), [`hosts/${a.host}/app.env`]: good });
  t.equal((await a.once()).outcome.phase, 'Converged');
  const id = (await docker.getContainer(name).inspect()).Id;

  const tampered = good.replace(
    /^TOKEN=ENC\[AES256_GCM,data:(.)/m,
    (_m, c: string) => `TOKEN=ENC[AES256_GCM,data:${c === 'A' ? 'B' : 'A'}`,
  );
  const cases: Array<[string, Record<string, string | null>, RegExp]> = [
    ['tampered value', { [`hosts/${a.host}/app.env`]: tampered }, /app\.env: TOKEN: does not decrypt/],
    [
      'tampered lastmodified',
      {
        [`hosts/${a.host}/app.env`]: good.replace(/^sops_lastmodified=.*$/m, 'sops_lastmodified=2030-01-01T00:00:00Z'),
      },
      /app\.env: sops\.mac \(with sops\.lastmodified\): does not decrypt/,
    ],
    [
      'another recipient',
      { [`hosts/${a.host}/app.env`]: sopsDotenv({ TOKEN: CANARY_NEXT }, { age: [stranger.recipient] }) },
      new RegExp(
        `app\\.env: no key on this host opens it: encrypted for age ${stranger.recipient}; this host has age ${key.recipient}`,
      ),
    ],
    [
      'env and envFrom',
      { ...spec({ env: { TOKEN: 'x' } }), [`hosts/${a.host}/app.env`]: good },
      /app\.env: TOKEN is set by both env and envFrom\[0\] \(hosts\/.*\/app\.env\); set it in one place/,
    ],
    [
      'plain file with decrypt',
      { ...spec(), [`hosts/${a.host}/app.env`]: 'TOKEN=plain\n' },
      /app\.env: has no sops metadata: it is not encrypted/,
    ],
  ];
  for (const [what, files, message] of cases) {
    await fx.fleet.commit(files, what);
    const r = await a.once();
    t.equal(r.outcome.phase, 'Invalid', what);
    const err = r.outcome.bundleErrors[0]!;
    t.match(err.message, message, what);
    t.equal(err.detail.file, `hosts/${a.host}/app.yaml`, `${what}: names the manifest`);
    t.equal((await docker.getContainer(name).inspect()).Id, id, `${what}: the container is untouched`);
    t.ok((await envOf(name)).includes(`TOKEN=${CANARY_ENV}`), `${what}: the last good values kept`);
    const doc = await fx.statusOf(a.host);
    t.equal(doc.phase, 'Invalid');
    t.notOk(JSON.stringify(doc).includes('CANARY'), `${what}: no canary in the status`);
    if (/decrypt|recipient/.test(what)) t.equal(err.code, 'E_SECRET_DECRYPT');
  }
  await fx.fleet.commit({ ...spec(), [`hosts/${a.host}/app.env`]: good });
  t.equal((await a.once()).outcome.phase, 'Converged', 'the next good commit applies');
  t.notOk(JSON.stringify(a.logs).includes('CANARY'), 'no canary in any log line');
});

t.test('steward validate: structure without keys, full decryption with --age-key-file', async (t) => {
  const co = join(dir, 'checkout');
  const write = async (files: Record<string, string>) => {
    for (const [p, text] of Object.entries(files)) {
      await mkdir(dirname(join(co, p)), { recursive: true });
      await writeFile(join(co, p), text);
    }
  };
  await write({
    ...manifests('h1', 'app-h1'),
    'secrets/app.env': sopsDotenv({ DB_PASSWORD: CANARY_ENV }, { age: [key.recipient] }),
  });
  let r = await steward(['validate', co, '--path', 'hosts/h1']);
  t.equal(r.code, 0, r.stderr);
  r = await steward(['validate', co, '--path', 'hosts/h1', '--age-key-file', key.file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /valid: 2 resource\(s\)/);
  r = await steward(['validate', co, '--path', 'hosts/h1', '--age-key-file', stranger.file]);
  t.equal(r.code, 2);
  t.match(r.stderr, /secrets\/app\.env: no key on this host opens it.*\[E_SECRET_DECRYPT\]/);
  await write({ 'secrets/app.env': 'DB_PASSWORD=plain\n' });
  r = await steward(['validate', co, '--path', 'hosts/h1']);
  t.equal(r.code, 2);
  t.match(r.stderr, /secrets\/app\.env: has no sops metadata/);
  t.notOk((r.stdout + r.stderr).includes('CANARY'));
});

t.test('enroll writes secrets and docker.authFile; doctor names the keys by their public half', async (t) => {
  const config = join(dir, 'enrolled.yaml');
  const auth = join(dir, 'auth.json');
  await writeFile(auth, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: 'dTpw' } } }));
  const pgpKey = new URL('../fixtures/sops/sops_functional_tests_key.asc', import.meta.url).pathname;
  const r = await steward([
    'enroll',
    ...['--url', fx.server.url('fleet'), '--host', 'secrets-enroll', '--state-dir', join(dir, 'enrolled-state')],
    ...['--age-key-file', key.file, '--pgp-key-file', pgpKey, '--docker-auth-file', auth],
    ...['--config', config, '--no-systemd'],
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(await readFile(config, 'utf8'), `secrets:\n  ageKeyFile: ${key.file}\n  pgpKeyFile: ${pgpKey}`);
  const d = await steward(['doctor', '--config', config]);
  t.match(
    d.stdout,
    `ok    secrets     SOPS files for age ${key.recipient}, pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4 can be decrypted`,
  );
  t.match(d.stdout, `ok    registries  logins for docker.io in ${auth}`);
  t.notMatch(d.stdout, /AGE-SECRET-KEY|dTpw/, 'no private key or credential printed');

  // Under systemd the key comes from $CREDENTIALS_DIRECTORY by its base name (LoadCredential=).
  const creds = await mkdtemp(join(tmpdir(), 'steward-creds-'));
  await writeFile(join(creds, key.file.split('/').pop()!), await readFile(stranger.file));
  const viaCreds = await steward(['doctor', '--config', config], {
    env: { ...process.env, CREDENTIALS_DIRECTORY: creds },
  });
  t.match(viaCreds.stdout, `ok    secrets     SOPS files for age ${stranger.recipient},`);

  const bad = await steward([
    'enroll',
    '--url',
    fx.server.url('fleet'),
    '--age-key-file',
    auth,
    '--config',
    join(dir, 'x.yaml'),
  ]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /secrets\.ageKeyFile .*auth\.json: line 1 is not an age identity/);
});

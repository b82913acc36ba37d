import t from 'tap';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, docker, fileDoc } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';
import { gitOut, statusRef } from '../helpers/git.js';
import { startRegistry, type Registry } from '../helpers/registry.js';

// Pulls from a real registry that needs a login (Debian's docker-registry with htpasswd, on
// loopback), with docker.authFile in Docker's config.json format. A refused pull is E_IMAGE_PULL
// saying why, never showing the credential, and the rest of the bundle still applies.
const dir = await mkdtemp(join(tmpdir(), 'steward-registry-'));
const root = join(dir, 'root');
let registry: Registry;
const fx = fleetFixture(t);
const pushed: string[] = [];

t.before(async () => {
  registry = await startRegistry('fleet', `S3cret-${Date.now()}`);
});
t.teardown(async () => {
  for (const ref of pushed)
    await docker
      .getImage(ref)
      .remove({ force: true })
      .catch(() => undefined);
  await registry?.stop();
});

async function authFile(name: string, entry: Record<string, string>): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify({ auths: { [registry.address]: entry } }), { mode: 0o600 });
  return file;
}

const basic = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString('base64') });

t.test('a pull with docker.authFile; without it or with a wrong password a clear E_IMAGE_PULL', async (t) => {
  const cases: Array<[string, Record<string, string> | undefined, 'ok' | RegExp]> = [
    ['auth', basic(registry.user, registry.password), 'ok'],
    ['username and password', { username: registry.user, password: registry.password }, 'ok'],
    ['no entry', undefined, /needs a login: docker\.authFile has no entry for 127\.0\.0\.1:\d+/],
    [
      'wrong password',
      basic(registry.user, 'not-the-password'),
      /refused the credentials docker\.authFile has for 127\.0\.0\.1:\d+/,
    ],
  ];
  for (const [i, [what, entry, expect]] of cases.entries()) {
    const ref = await registry.push('local/busybox:1', `steward/busybox:case${i}`);
    pushed.push(ref);
    const file = entry ? await authFile(`auth-${i}.json`, entry) : undefined;
    const a = await fx.agent({
      extra: `files: { roots: [${root}] }${file ? `\ndocker: { authFile: ${file} }` : ''}`,
    });
    const name = `pulled-${a.host}`;
    await fx.fleet.commit({
      [`hosts/${a.host}/app.yaml`]: containerDoc(name, { image: ref }),
      [`hosts/${a.host}/motd.yaml`]: fileDoc(join(root, `motd-${i}`), `${what}\n`),
    });
    const r = await a.once();
    t.equal(await readFile(join(root, `motd-${i}`), 'utf8'), `${what}\n`, `${what}: the File applied`);
    if (expect === 'ok') {
      t.equal(r.outcome.phase, 'Converged', `${what}: converged`);
      t.equal((await docker.getContainer(name).inspect()).Config.Image, ref, `${what}: pulled and running`);
      continue;
    }
    t.not(r.outcome.phase, 'Converged', what);
    const result = r.outcome.results.get(`Container/${name}`);
    t.equal(result?.error?.code, 'E_IMAGE_PULL', what);
    t.match(result?.error?.message, expect, what);
    const status = await gitOut(fx.fleet.bare, 'log', '-p', statusRef(a.host), '--', `hosts/${a.host}`);
    t.match(status, /E_IMAGE_PULL/, `${what}: the status says so`);
    for (const [where, text] of [
      ['logs', JSON.stringify(a.logs)],
      ['status', status],
      ['error', JSON.stringify(result?.error)],
    ])
      t.notOk(text!.includes(registry.password), `${what}: the password is not in the ${where}`);
  }
});

t.test('an authFile that is not one stops the agent with the file and the reason', async (t) => {
  const file = join(dir, 'broken.json');
  await writeFile(file, '{"auths": {"127.0.0.1:5000": {"email": "x"}}}');
  const err = await fx
    .agent({ extra: `docker: { authFile: ${file} }` })
    .then(() => undefined)
    .catch((e: Error) => e);
  t.match(
    err?.message,
    /docker\.authFile .*broken\.json: the entry for "127\.0\.0\.1:5000" has no auth, username\/password or identitytoken/,
  );
});

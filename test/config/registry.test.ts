import t from 'tap';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { RegistryAuth, registryOf } from '../../agent/config/registry.js';

const dir = await mkdtemp(join(tmpdir(), 'stw-auth-'));
const load = async (auths: unknown) => {
  const file = join(dir, `auth-${Math.random()}.json`);
  await writeFile(file, JSON.stringify({ auths }));
  return RegistryAuth.load({ file: 'agent.yaml', docker: { socket: '/x', authFile: file } } as never);
};

t.test('an image names its registry; Docker Hub under any of its names', async (t) => {
  const table: Array<[string, string]> = [
    ['busybox', 'docker.io'],
    ['library/busybox:1', 'docker.io'],
    ['docker.io/library/nginx', 'docker.io'],
    ['index.docker.io/x/y', 'docker.io'],
    ['registry.example.com/team/app:2', 'registry.example.com'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000'],
    ['localhost/app', 'localhost'],
  ];
  for (const [image, registry] of table) t.equal(registryOf(image), registry, image);
});

t.test('config.json entries: auth, username/password, identitytoken; Hub keys all find a Hub image', async (t) => {
  const auth = await load({
    'https://index.docker.io/v1/': { auth: Buffer.from('hub:hubpw').toString('base64') },
    'registry.example.com': { username: 'u', password: 'p:w' },
    'https://ghcr.example/': { identitytoken: 'tok' },
  });
  t.same((await auth.registries()).sort(), ['docker.io', 'ghcr.example', 'registry.example.com']);
  const hub = (await auth.forImage('nginx:1'))!;
  t.equal(hub.serveraddress, 'https://index.docker.io/v1/');
  t.equal(hub.username, 'hub');
  t.equal(hub.password?.reveal(), 'hubpw');
  t.equal((await auth.forImage('registry.example.com/a'))?.password?.reveal(), 'p:w');
  t.equal((await auth.forImage('ghcr.example/a'))?.identitytoken?.reveal(), 'tok');
  t.equal(await auth.forImage('quay.example/a'), undefined, 'no entry: no login');
  t.notMatch(inspect(hub) + JSON.stringify(hub), /hubpw/, 'a login prints without its password');
});

t.test('a file that is not Docker config.json is refused, naming it and never a credential', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /has no "auths" object/],
    [{ 'r.example': { auth: Buffer.from('nocolon').toString('base64') } }, /the entry for "r\.example" has no auth/],
    [{ 'r.example': { username: 'only' } }, /the entry for "r\.example" has no auth/],
  ];
  for (const [auths, message] of cases) {
    const err = (await load(auths).catch((e: unknown) => e)) as Error & { code: string };
    t.equal(err.code, 'E_REGISTRY_AUTH');
    t.match(err.message, message);
    t.notMatch(err.message, /nocolon/);
  }
  // A missing file is no logins (a File resource may write it later); doctor insists on it.
  const later = join(dir, 'later.json');
  const auth = await RegistryAuth.load({ file: 'a', docker: { socket: '/x', authFile: later } } as never);
  t.equal(await auth.forImage('r.example/a'), undefined);
  await t.rejects(auth.registries(), { code: 'E_REGISTRY_AUTH', message: /later\.json: cannot be read \(ENOENT\)/ });
  await writeFile(later, JSON.stringify({ auths: { 'r.example': { username: 'u', password: 'p' } } }));
  t.equal((await auth.forImage('r.example/a'))?.username, 'u', 'read once it appears, without a reload');
});

import t from 'tap';
import { mkdir, mkdtemp, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitOut, statusRef } from '../helpers/git.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';

// Bad input from a hostile or careless operator, through the CLI and the real Git fx.server.
const fileDoc = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'steward/v1', kind: 'File', metadata: { name }, spec });
const logLines = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const fx = fleetFixture(t, { token: 'S3CRET-IN-URL' });

/** A host folder: etc/agent.yaml, a root etc/ (so the config itself is below a root), state/. */
async function host(name: string, opts: { url?: string; stateDir?: string } = {}) {
  const base = await mkdtemp(join(tmpdir(), `steward-hostile-${name}-`));
  const etc = join(base, 'etc');
  await mkdir(etc);
  const stateDir = opts.stateDir ?? join(base, 'state');
  const url = opts.url ?? fx.server.url('fleet').replace('http://', 'http://steward:S3CRET-IN-URL@');
  const config = join(etc, 'agent.yaml');
  await writeFile(
    config,
    `host: ${name}\nsource:\n  url: ${url}\n  interval: 1s\n  timeout: 5s\nstateDir: ${stateDir}\nfiles:\n  roots: [${base}]\n`,
  );
  return { base, etc, config, stateDir };
}

t.test('a relative --config is no other spelling: a File at the config’s absolute path is refused', async (t) => {
  const h = await host('relcfg');
  await fx.fleet.commit({ [`hosts/relcfg/own.yaml`]: fileDoc('own', { path: h.config, content: 'host: pwned\n' }) });
  const r = await steward(['once', '--config', 'agent.yaml'], { cwd: h.etc });
  t.equal(r.code, 2, 'the bundle is invalid');
  t.match(r.stdout, `path \\"${h.config}\\" is Steward's own file or folder`);
  t.match(await readFile(h.config, 'utf8'), /^host: relcfg\n/, 'the agent config is untouched');
});

t.test('a stateDir reached through a symlink: state.json at its real path is refused', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'steward-hostile-link-'));
  await mkdir(join(base, 'real'));
  await symlink(join(base, 'real'), join(base, 'link'));
  const h = await host('linkstate', { stateDir: join(base, 'link') });
  await writeFile(
    h.config,
    (await readFile(h.config, 'utf8')).replace(`roots: [${h.base}]`, `roots: [${h.base}, ${base}]`),
  );
  await fx.fleet.commit({
    [`hosts/linkstate/s.yaml`]: fileDoc('s', { path: join(base, 'real', 'state.json'), content: '{}' }),
  });
  const r = await steward(['once', '--config', h.config]);
  t.equal(r.code, 2);
  t.match(
    r.stdout,
    `path \\"${join(base, 'real', 'state.json')}\\" is Steward's own file or folder (${join(base, 'real')})`,
  );
});

t.test(
  'YAML aliases and non-UTF-8 bytes through Git: E_MANIFEST_PARSE with file and line, nothing applied',
  async (t) => {
    const h = await host('aliases');
    const bomb =
      'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    const latin1 = Buffer.concat([
      Buffer.from(fileDoc('l', { path: join(h.base, 'l'), content: 'caf' }).replace('caf"', 'caf')),
      Buffer.from([0xe9]),
      Buffer.from('"}\n'),
    ]);
    await fx.fleet.commit({
      'hosts/aliases/bomb.yaml': bomb,
      'hosts/aliases/nope.yaml':
        'apiVersion: steward/v1\nkind: File\nmetadata: { name: n }\nspec: { path: *nope, content: x }\n',
      'hosts/aliases/latin1.yaml': latin1,
      'hosts/aliases/ok.yaml': fileDoc('ok', { path: join(h.base, 'ok'), content: 'ok\n' }),
      'hosts/aliases/complex.yaml':
        'apiVersion: steward/v1\nkind: File\nmetadata: { name: c }\nspec:\n  ? [a, b]\n  : x\n',
    });
    const r = await steward(['once', '--config', h.config]);
    t.equal(r.code, 2, 'bad input: exit 2');
    const errors = logLines(r.stdout)
      .filter((l) => l.level === 'error' && l.code)
      .map((l) => `${l.file}:${l.line} ${l.code} ${l.msg}`);
    t.same(errors.sort(), [
      'hosts/aliases/bomb.yaml:2 E_MANIFEST_PARSE too many alias expansions (more than 100): a YAML alias bomb is refused',
      'hosts/aliases/complex.yaml:5 E_MANIFEST_PARSE a mapping key must be a plain value, not a list or a mapping',
      `hosts/aliases/latin1.yaml:1 E_MANIFEST_PARSE not valid UTF-8 (byte ${latin1.indexOf(0xe9)}); manifests are UTF-8 text, put binary content in a file named by "source"`,
      'hosts/aliases/nope.yaml:4 E_MANIFEST_PARSE alias *nope names no anchor set before it in this document',
    ]);
    t.notMatch(r.stdout + r.stderr, /E_GIT_NO_REVISION|unexpected error|    at /, 'not a Git error, not a crash');
    t.equal(
      r.stderr,
      '',
      'nothing outside the JSON log (yaml printed "Keys with collection values will be stringified")',
    );
    t.same(
      (await readdir(h.base)).filter((n) => n === 'ok' || n === 'l'),
      [],
      'nothing applied',
    );
  },
);

t.test('a password in the URL is used, and never printed, logged, reported or stored', async (t) => {
  const h = await host('urlpw');
  await fx.fleet.commit({ 'hosts/urlpw/f.yaml': fileDoc('f', { path: join(h.base, 'f'), content: 'f\n' }) });
  const r = await steward(['once', '--config', h.config]);
  t.equal(r.code, 0, r.stdout.slice(-2000));
  t.equal(await readFile(join(h.base, 'f'), 'utf8'), 'f\n', 'the password authenticated the fetch');
  const doctor = await steward(['doctor', '--config', h.config]);
  t.match(doctor.stdout, 'warn  config      source.url carries a password');
  const stored: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) stored.push(await readFile(p, 'latin1'));
    }
  };
  await walk(h.stateDir);
  const status = await gitOut(fx.fleet.bare, 'log', '-p', statusRef('urlpw'));
  t.ok(stored.length > 5, `${stored.length} files in stateDir read`);
  for (const [what, text] of [
    ['once output', r.stdout + r.stderr],
    ['doctor output', doctor.stdout + doctor.stderr],
    ['stateDir (gitdirs, state, status)', stored.join('\n')],
    ['status branch', status],
  ] as const) {
    t.notMatch(text, 'S3CRET-IN-URL', `not in the ${what}`);
  }
  t.match(
    await readFile(join(h.stateDir, 'source.git', 'config'), 'utf8'),
    `url = ${fx.server.url('fleet')}`,
    'the gitdir keeps the URL without it',
  );
});

t.test('steward validate refuses a 50 MB manifest from its size, without parsing it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'steward-validate-big-'));
  await mkdir(join(dir, 'hosts', 'a'), { recursive: true });
  await writeFile(join(dir, 'hosts', 'a', 'big.yaml'), Buffer.alloc(50 * 1024 * 1024, 0x61));
  const r = await steward(['validate', dir]);
  t.same(
    [r.code, r.stderr.trim()],
    [2, `hosts/a/big.yaml: file is larger than 1048576 bytes (${50 * 1024 * 1024}) [E_MANIFEST_PARSE]`],
  );
});

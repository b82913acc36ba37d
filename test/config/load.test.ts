import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { loadConfig, parseConfig, readCredentials } from '../../agent/config/load.js';
import { formatError, StewardErrors } from '../../agent/errors.js';
import { configErrors } from '../helpers/config.js';
import { readGitCredentials } from '../../agent/source/remote.js';

const exec = promisify(execFile);
const F = '/etc/steward/agent.yaml';
const errorsOf = (text: string): string[] => configErrors(text, F);

const malformed: Array<[string, string, string[]]> = [
  [
    'yaml syntax',
    'source:\n  url: [http://x\n',
    [`${F}:2: Flow sequence in block collection must be sufficiently indented and end with a ] [E_CONFIG_PARSE]`],
  ],
  ['empty file', '# nothing\n', [`${F}:1: the config file is empty [E_CONFIG_INVALID]`]],
  ['no source', 'host: a\n', [`${F}:1: /source: missing required field "source" [E_CONFIG_INVALID]`]],
  [
    'ssh url without a key or known hosts',
    'source:\n  url: git@github.com:fleet/infra.git\n',
    [
      `${F}:2: /source: an SSH url needs source.auth.sshKeyFile (the deploy key) [E_CONFIG_INVALID]`,
      `${F}:2: /source: an SSH url needs source.auth.knownHostsFile: the server's host key must be listed (never trusted on first use) [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'ssh key for an https url',
    'source:\n  url: https://g/f.git\n  auth: { sshKeyFile: /etc/steward/key }\n',
    [
      `${F}:3: /source/auth/sshKeyFile: sshKeyFile is for an SSH url; https://g/f.git is HTTP(S) [E_CONFIG_INVALID]`,
      `${F}:3: /source/auth: an HTTP(S) source.auth needs tokenFile [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'verify with a relative path',
    'source:\n  url: https://g/f.git\n  verify: { gpgKeysFile: keys.asc }\n',
    [
      `${F}:3: /source/verify/gpgKeysFile: does not match the expected form (Absolute path of a file of armored OpenPGP public keys that may sign (gpg --armor --export).) [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'verify empty',
    'source:\n  url: https://g/f.git\n  verify: {}\n',
    [`${F}:3: /source/verify: must have at least 1 field [E_CONFIG_INVALID]`],
  ],
  [
    'unknown key',
    'source:\n  url: https://git.example.com/f.git\n  intervall: 5m\n',
    [`${F}:3: /source/intervall: unknown field "intervall" [E_CONFIG_INVALID]`],
  ],
  [
    'bad duration',
    'source:\n  url: https://git.example.com/f.git\n  interval: 5 minutes\n',
    [
      `${F}:3: /source/interval: does not match the expected form (A duration such as 500ms, 30s, 5m, 1h30m.) [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'interval and schedule',
    'source:\n  url: https://g/f.git\n  interval: 1m\n  schedule: "*/5 * * * *"\n',
    [`${F}:2: /source: cannot have both "interval" and "schedule" [E_CONFIG_INVALID]`],
  ],
  [
    'bad rollback',
    'source: { url: "https://g/f.git" }\nrollback: yes\n',
    [`${F}:2: /rollback: must be one of: "auto", "off" [E_CONFIG_INVALID]`],
  ],
  [
    'relative token file',
    'source:\n  url: https://g/f.git\n  auth: { tokenFile: token.txt }\n',
    [
      `${F}:3: /source/auth/tokenFile: does not match the expected form (Absolute path of the file holding the token or password; secrets are only read from files.) [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'token inline',
    'source:\n  url: https://g/f.git\n  auth: { username: a, token: s3cret }\n',
    [`${F}:3: /source/auth/token: unknown field "token" [E_CONFIG_INVALID]`],
  ],
  [
    'unknown variable',
    'source:\n  url: https://g/f.git\n  paths: [hosts/${hostname}]\n',
    [`${F}:3: /source/paths/0: unknown variable \${hostname}; use \${host} or \${labels.KEY} [E_CONFIG_INVALID]`],
  ],
  [
    'missing label',
    'labels: { site: berlin }\nsource:\n  url: https://g/f.git\n  paths: [hosts/${host}, "groups/${labels.role}"]\n',
    [`${F}:4: /source/paths/1: \${labels.role}: the host has no label "role" [E_CONFIG_INVALID]`],
  ],
  [
    'path escapes repo',
    'source:\n  url: https://g/f.git\n  paths: ["../other"]\n',
    [`${F}:3: /source/paths/0: "../other" must not contain ".." [E_CONFIG_INVALID]`],
  ],
  [
    'bad host name',
    'host: "edge berlin"\nsource: { url: "https://g/f.git" }\n',
    [
      `${F}:1: /host: does not match the expected form (This host's name in the fleet: letters, digits, '.', '_' and '-' (default: the OS hostname).) [E_CONFIG_INVALID]`,
    ],
  ],
  [
    'labels not strings',
    'labels: { floor: 3 }\nsource: { url: "https://g/f.git" }\n',
    [`${F}:1: /labels/floor: must be a string [E_CONFIG_INVALID]`],
  ],
  [
    'bad cron',
    'source:\n  url: https://g/f.git\n  schedule: "99 * * * *"\n',
    [`${F}:3: /source/schedule: invalid cron expression: 99 is a invalid expression for minute [E_CONFIG_INVALID]`],
  ],
  [
    'alias bomb',
    'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nsource: { url: "https://g/f.git" }\n',
    [`${F}:2: too many alias expansions (more than 100): a YAML alias bomb is refused [E_CONFIG_PARSE]`],
  ],
  [
    'unresolved alias',
    'source:\n  url: *nope\n',
    [`${F}:2: alias *nope names no anchor set before it in this document [E_CONFIG_PARSE]`],
  ],
  [
    'interval 0s',
    'source:\n  url: https://g/f.git\n  interval: 0s\n',
    [`${F}:3: /source/interval: must be between 100ms and 24h (got 0s) [E_CONFIG_INVALID]`],
  ],
  [
    'interval 999h',
    'source:\n  url: https://g/f.git\n  interval: 999h\n',
    [`${F}:3: /source/interval: must be between 100ms and 24h (got 999h) [E_CONFIG_INVALID]`],
  ],
  [
    'timeout 0s',
    'source:\n  url: https://g/f.git\n  timeout: 0s\n',
    [`${F}:3: /source/timeout: must be between 100ms and 1h (got 0s) [E_CONFIG_INVALID]`],
  ],
  [
    'timeout huge',
    'source:\n  url: https://g/f.git\n  timeout: 99999999999h\n',
    [`${F}:3: /source/timeout: must be between 100ms and 1h (got 99999999999h) [E_CONFIG_INVALID]`],
  ],
  [
    'heartbeat 0s',
    'source: { url: "https://g/f.git" }\nstatus: { heartbeat: 0s }\n',
    [`${F}:2: /status/heartbeat: must be between 1s and 24h (got 0s) [E_CONFIG_INVALID]`],
  ],
  [
    'bad pack size',
    'source:\n  url: https://g/f.git\n  maxPackSize: 1TB\n',
    [
      `${F}:3: /source/maxPackSize: does not match the expected form (The largest pack a fetch may download (e.g. 64MiB); a server that sends more is cut off with E_GIT_TOO_LARGE. A fetch holds about 4 times the pack in memory.) [E_CONFIG_INVALID]`,
    ],
  ],
];

t.test('malformed configs: file, line, field and reason', async (t) => {
  for (const [name, text, want] of malformed) t.same(errorsOf(text), want, name);
});

t.test('defaults and expansion', async (t) => {
  const c = parseConfig(
    'labels: { site: berlin, role: kiosk }\nsource:\n  url: https://git.example.com/fleet/infra.git/\n  paths: ["hosts/${host}/", "./groups/${labels.role}", "sites//${labels.site}"]\n',
    F,
    { hostname: 'edge-01' },
  );
  t.equal(c.host, 'edge-01', 'host defaults to the OS hostname');
  t.same(c.source.paths, ['hosts/edge-01', 'groups/kiosk', 'sites/berlin']);
  t.equal(c.source.url, 'https://git.example.com/fleet/infra.git', 'trailing slash dropped');
  t.equal(c.source.branch, 'main');
  t.equal(c.source.intervalMs, 60_000);
  t.equal(c.status.branch, 'steward-status');
  t.equal(c.status.heartbeatMs, 15 * 60_000);
  t.equal(c.stateDir, '/var/lib/steward');
  t.equal(c.rollback, 'off');
  t.equal(c.prune.allowEmpty, false);
  const d = parseConfig('host: x\nsource: { url: "http://g/f.git" }\n', F);
  t.same(d.source.paths, ['hosts/x'], 'paths default to hosts/${host}');
});

t.test('JSON configs are accepted', async (t) => {
  const c = parseConfig(
    JSON.stringify({ host: 'j', source: { url: 'https://g/f.git', interval: '1h30m' } }),
    '/etc/steward/agent.json',
  );
  t.equal(c.source.intervalMs, 5_400_000);
});

t.test('token files: read, never printed; missing or empty is a clear error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'steward-cfg-'));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'ghp_CANARY_TOKEN_123\n');
  const file = join(dir, 'agent.yaml');
  await writeFile(file, `host: a\nsource:\n  url: https://g/f.git\n  auth: { tokenFile: ${tokenFile} }\n`);
  const config = await loadConfig(file);
  const creds = await readCredentials(config);
  t.equal(creds.token?.reveal(), 'ghp_CANARY_TOKEN_123');
  for (const shown of [String(creds.token), JSON.stringify(creds), inspect(creds), JSON.stringify(config)])
    t.notMatch(shown, /CANARY/);

  await writeFile(file, `host: a\nsource:\n  url: https://g/f.git\n  auth: { tokenFile: ${dir}/missing }\n`);
  await t.rejects(readCredentials(await loadConfig(file)), {
    code: 'E_CONFIG_TOKEN',
    message: `cannot read the token file ${dir}/missing: ENOENT`,
  });
  await writeFile(tokenFile, '\n');
  await writeFile(file, `host: a\nsource:\n  url: https://g/f.git\n  auth: { tokenFile: ${tokenFile} }\n`);
  await t.rejects(readCredentials(await loadConfig(file)), {
    code: 'E_CONFIG_TOKEN',
    message: `the token file ${tokenFile} is empty`,
  });
  const missing = await loadConfig(join(dir, 'nope.yaml')).catch((err: unknown) => err);
  t.ok(missing instanceof StewardErrors);
  t.same((missing as StewardErrors).errors.map(formatError), [
    `${dir}/nope.yaml: cannot read the config file: no such file [E_CONFIG_READ]`,
  ]);
});

t.test('a password in the URL is taken out of it, also with a malformed %-escape', async (t) => {
  const c = parseConfig('source:\n  url: "https://ops:p%zz@git.example.com/f.git"\n', F, { hostname: 'box-1' });
  t.equal(c.source.url, 'https://git.example.com/f.git');
  t.equal(c.source.username, 'ops');
  t.equal(c.source.urlPassword?.reveal(), 'p%zz');
  t.notMatch(JSON.stringify(c) + inspect(c), 'p%zz', 'the config prints it as [redacted]');
  t.equal((await readCredentials(c)).token?.reveal(), 'p%zz', 'and it is the token when no tokenFile is set');
});

t.test('SSH deploy key and known_hosts: read, never printed; a bad file is named with why', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'steward-cfg-ssh-'));
  const key = join(dir, 'deploy');
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'd', '-f', key]);
  const fp = (await exec('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`])).stdout.split(' ')[1];
  const hosts = join(dir, 'known_hosts');
  const pub = (await readFile(`${key}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
  await writeFile(hosts, `# the fleet's Git server\ngit.example.com ${pub}\n`);
  const file = join(dir, 'agent.yaml');
  const load = async (keyFile: string, knownHostsFile = hosts) => {
    await writeFile(
      file,
      `host: a\nsource:\n  url: git@git.example.com:fleet.git\n  auth: { sshKeyFile: ${keyFile}, knownHostsFile: ${knownHostsFile} }\n`,
    );
    return readGitCredentials(await loadConfig(file));
  };
  const creds = await load(key);
  t.equal(creds.ssh?.fingerprint, fp);
  t.equal(creds.ssh?.knownHosts.length, 1);
  const secret = (await readFile(key, 'utf8')).split('\n')[1]!;
  for (const shown of [String(creds.ssh?.key), JSON.stringify(creds), inspect(creds, { depth: 9 })])
    t.notMatch(shown, secret);

  const why = (p: Promise<unknown>) =>
    p.then(
      () => 'read',
      (e: unknown) => formatError(e as never),
    );
  const at = `${file}: /source/auth/sshKeyFile:`;
  t.equal(await why(load(join(dir, 'missing'))), `${at} cannot read ${dir}/missing: ENOENT [E_CONFIG_READ]`);
  t.equal(
    await why(load(`${key}.pub`)),
    `${at} the SSH key ${key}.pub is a public key; sshKeyFile is the private half (the file without .pub) [E_CONFIG_INVALID]`,
  );
  const locked = join(dir, 'locked');
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'hunter2', '-C', 'l', '-f', locked]);
  t.match(await why(load(locked)), `${at} the SSH key ${locked} is protected by a passphrase`);
  await writeFile(join(dir, 'junk'), 'not a key\n');
  t.match(await why(load(join(dir, 'junk'))), `${at} the SSH key ${dir}/junk cannot be read as an OpenSSH private key`);
  await writeFile(join(dir, 'huge'), Buffer.alloc(5 * 1024 * 1024));
  t.equal(
    await why(load(join(dir, 'huge'))),
    `${at} ${dir}/huge is 5242880 bytes; more than 4 MiB is not a key file [E_CONFIG_INVALID]`,
  );

  const hostsAt = `${file}: /source/auth/knownHostsFile:`;
  await writeFile(join(dir, 'bad_hosts'), `git.example.com ssh-ed25519 !!!\n`);
  t.match(await why(load(key, join(dir, 'bad_hosts'))), `${hostsAt} ${dir}/bad_hosts: line 1`);
  await writeFile(join(dir, 'empty_hosts'), '# nothing yet\n');
  t.equal(
    await why(load(key, join(dir, 'empty_hosts'))),
    `${hostsAt} ${dir}/empty_hosts lists no host key [E_CONFIG_INVALID]`,
  );
});

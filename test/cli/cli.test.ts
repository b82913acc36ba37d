import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, docker, uid } from '../helpers/agent.js';
import { createFleetRepo, gitOut, showFile, startGitServer, statusRef } from '../helpers/git.js';
import { matchesSchema } from '../../agent/manifest/schema.js';
import type { HostStatus } from '../../agent/types/host-status.js';
import { MAIN as main, steward as cli } from '../helpers/cli.js';

const showLog = (bare: string, host: string) => gitOut(bare, 'log', '-1', '--format=%s', statusRef(host));

const steward = (...args: string[]) => cli(args);
const tmp = () => mkdtemp(join(tmpdir(), 'steward-cli-'));
const doc = (name: string, spec = 'spec: { image: local/busybox:1 }') =>
  `apiVersion: steward/v1\nkind: Container\nmetadata: { name: ${name} }\n${spec}\n`;

t.test('validate: exit 0 on a valid checkout, 2 with one line per error', async (t) => {
  const dir = await tmp();
  await mkdir(join(dir, 'hosts/a'), { recursive: true });
  await mkdir(join(dir, 'groups/kiosk'), { recursive: true });
  await writeFile(join(dir, 'hosts/a/web.yaml'), doc('web'));
  await writeFile(join(dir, 'groups/kiosk/side.yaml'), doc('side'));
  t.same(await steward('validate', dir), { code: 0, stdout: 'valid: 2 resource(s) in 2 file(s)\n', stderr: '' });
  await writeFile(join(dir, 'hosts/a/bad.yaml'), doc('bad', 'spec:\n  image: x\n  cpus: none'));
  await writeFile(join(dir, 'groups/kiosk/dup.yaml'), doc('web'));
  const r = await steward('validate', dir);
  t.equal(r.code, 2);
  t.same(r.stderr.trim().split('\n'), [
    'hosts/a/bad.yaml:6: /spec/cpus: must be a number [E_MANIFEST_INVALID]',
    'hosts/a/web.yaml:1: /metadata/name: Container/web is declared twice: groups/kiosk/dup.yaml:1 and hosts/a/web.yaml:1 [E_MANIFEST_DUPLICATE]',
  ]);
  t.same(
    await steward('validate', dir, '--path', 'hosts/a', '--json').then((x) => [x.code, JSON.parse(x.stdout).resources]),
    [2, []],
  );
  await symlink('/etc/passwd', join(dir, 'groups/kiosk/evil.yaml'));
  const s = await steward('validate', dir, '--path', 'groups/kiosk');
  t.match(s.stderr, 'groups/kiosk/evil.yaml: symlinks are not allowed in the assigned paths [E_MANIFEST_ENTRY]');
  t.same(await steward('validate', dir, '--bogus').then((x) => [x.code, x.stderr.trim()]), [
    2,
    `steward validate: Unknown option '--bogus'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "--bogus" [E_ARGS]`,
  ]);
});

t.test('enroll writes a config the agent loads; refuses to overwrite; checks the token file', async (t) => {
  const dir = await tmp();
  const config = join(dir, 'agent.yaml');
  await writeFile(join(dir, 'token'), 'T0KEN\n');
  const r = await steward(
    'enroll',
    '--url',
    'https://git.example.com/fleet.git',
    '--host',
    'edge-1',
    '--token-file',
    join(dir, 'token'),
    '--path',
    'hosts/${host}',
    '--path',
    'groups/${labels.role}',
    '--label',
    'role=kiosk',
    '--root',
    '/etc/kiosk',
    '--config',
    config,
  );
  t.same(r, {
    code: 0,
    stdout: `wrote ${config} for host edge-1 (https://git.example.com/fleet.git, hosts/edge-1, groups/kiosk)\n`,
    stderr: '',
  });
  const text = await readFile(config, 'utf8');
  t.match(text, 'tokenFile: ' + join(dir, 'token'));
  t.notMatch(text, 'T0KEN');
  t.same(
    await steward('enroll', '--url', 'https://x/f.git', '--config', config).then((x) => [x.code, x.stderr.trim()]),
    [2, `steward enroll: ${config} exists; pass --force to replace it [E_ARGS]`],
  );
  const missing = await steward(
    'enroll',
    '--url',
    'https://x/f.git',
    '--token-file',
    join(dir, 'nope'),
    '--config',
    join(dir, 'b.yaml'),
    '--host',
    'b',
  );
  t.same(
    [missing.code, missing.stderr.trim()],
    [
      2,
      `steward enroll: ${join(dir, 'b.yaml')}: /source/auth/tokenFile: cannot read the token file ${join(dir, 'nope')}: ENOENT [E_CONFIG_TOKEN]`,
    ],
  );
  const bad = await steward('enroll', '--url', 'ssh://git@x/f.git', '--config', join(dir, 'c.yaml'), '--host', 'c');
  t.equal(bad.code, 2);
  t.match(bad.stderr, '/source: an SSH url needs source.auth.sshKeyFile (the deploy key)');
});

t.test('once with a broken config exits 2 naming file and line; unknown commands exit 2', async (t) => {
  const dir = await tmp();
  await writeFile(join(dir, 'agent.yaml'), 'host: a\nsource:\n  url: https://g/f.git\n  interval: often\n');
  t.same(await steward('once', '--config', join(dir, 'agent.yaml')), {
    code: 2,
    stdout: '',
    stderr: `steward once: ${dir}/agent.yaml:4: /source/interval: does not match the expected form (A duration such as 500ms, 30s, 5m, 1h30m.) [E_CONFIG_INVALID]\n`,
  });
  t.equal((await steward('frobnicate')).code, 2);
});

t.test('plan prints the changes with reasons and touches nothing; run polls and stops on SIGTERM with 0', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const host = `cli-${uid()}`;
  const dir = await tmp();
  const config = join(dir, 'agent.yaml');
  const metricsPort = 19000 + Math.floor(Math.random() * 1000);
  await writeFile(
    config,
    `host: ${host}\nsource:\n  url: ${server.url('fleet')}\n  interval: 500ms\nstateDir: ${dir}/state\nmetrics: { listen: "127.0.0.1:${metricsPort}" }\n`,
  );
  await fleet.commit({ [`hosts/${host}/w.yaml`]: containerDoc(`w-${host}`, { image: 'local/busybox:1' }) });
  const doctor = await steward('doctor', '--config', config);
  t.match(
    doctor.stdout,
    new RegExp(
      `^ok    config .*\nok    git +reachable; main at [0-9a-f]{7}\nok    docker +/var/run/docker.sock: engine `,
    ),
  );
  t.match(
    doctor.stdout,
    /\nFAIL  systemd +this host was not booted with systemd: Service resources cannot be applied\n/,
    'this machine has no systemd as PID 1',
  );
  t.equal(doctor.code, 1, 'a failed check: exit 1');
  const plan = await steward('plan', '--config', config);
  t.equal(plan.code, 0);
  t.match(
    plan.stdout,
    new RegExp(
      `^revision [0-9a-f]{12}: 1 change\\(s\\), 0 unchanged\\nRESOURCE +ACTION +REASONS\\nContainer/w-${host} +create +container does not exist\\n$`,
    ),
  );
  const json = JSON.parse((await steward('plan', '--config', config, '--json')).stdout);
  t.same(json.changes, [
    { id: `Container/w-${host}`, action: 'create', reasons: ['container does not exist'], drift: false },
  ]);
  t.same(
    await docker.listContainers({ all: true, filters: { label: [`steward.host=${host}`] } }),
    [],
    'plan created nothing',
  );

  const daemon = spawn(process.execPath, [main, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(async () => {
    daemon.kill('SIGKILL');
    for (const c of await docker.listContainers({ all: true, filters: { label: [`steward.host=${host}`] } }))
      await docker.getContainer(c.Id).remove({ force: true });
  });
  const lines: Array<{ msg: string }> = [];
  daemon.stdout.on('data', (d: Buffer) =>
    d
      .toString()
      .split('\n')
      .filter(Boolean)
      .forEach((l) => lines.push(JSON.parse(l))),
  );
  const waitFor = async (pred: () => boolean, ms = 15000) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return pred();
  };
  t.ok(await waitFor(() => lines.filter((l) => l.msg.startsWith('run finished')).length >= 3), 'three runs');
  const running = await docker.listContainers({ filters: { label: [`steward.host=${host}`] } });
  t.equal(running.length, 1);
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  t.match(metrics, /^steward_last_run_success 1$/m, 'metrics: the last run converged');
  t.match(metrics, /^steward_resources\{status="Ready"\} 1$/m);
  t.match(metrics, /^steward_status_pushes_total\{result="pushed"\} [1-9]/m);
  t.match(metrics, /^steward_runs_total [3-9]\d*$/m);
  const second = await steward('run', '--config', config);
  t.equal(second.code, 1, 'a second agent refuses to start');
  t.match(second.stderr, /another steward \(pid \d+\) is running on this host/);

  await writeFile(
    config,
    `host: ${host}\nsource:\n  url: ${server.url('fleet')}\n  interval: soon\nstateDir: ${dir}/state\n`,
  );
  daemon.kill('SIGHUP');
  t.ok(
    await waitFor(() => lines.some((l) => l.msg.startsWith('config reload refused'))),
    'an invalid config is refused',
  );
  const after = lines.length;
  t.ok(
    await waitFor(() => lines.slice(after).some((l) => l.msg.startsWith('run finished'))),
    'and the old one keeps running',
  );
  await writeFile(
    config,
    `host: ${host}\nsource:\n  url: ${server.url('fleet')}\n  interval: 200ms\nstateDir: ${dir}/state\n`,
  );
  daemon.kill('SIGHUP');
  t.ok(await waitFor(() => lines.some((l) => l.msg === 'config reloaded')));

  const stopped = Date.now();
  daemon.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => daemon.once('exit', r));
  t.equal(code, 0, 'SIGTERM exits 0');
  t.ok(Date.now() - stopped < 15_000, 'promptly');
  t.equal(lines.at(-1)?.msg, 'steward stopped');
  t.ok(
    lines.some((l) => l.msg === `status pushed to ${statusRef(host)}: Offline`),
    'it said so',
  );

  // The status branch says the agent stopped, and still shows what the host runs.
  const statusOf = async () =>
    JSON.parse((await showFile(fleet.bare, statusRef(host), `hosts/${host}/status.json`))!) as HostStatus;
  const offline = await statusOf();
  t.ok(matchesSchema('host-status', offline), 'a valid status document');
  t.equal(offline.phase, 'Offline');
  t.match(
    offline.conditions.find((c) => c.type === 'Ready'),
    { status: 'Unknown', reason: 'AgentStopped', message: /^steward stopped at / },
  );
  t.equal(offline.resources[`Container/w-${host}`]?.status, 'Ready', 'the last run’s resources are kept');
  t.match(await showLog(fleet.bare, host), new RegExp(`^steward\\(${host}\\): Offline at `), 'the commit says it');
  const table = await steward('status', '--config', config, '--host', host);
  t.equal(table.code, 1, 'steward status: an Offline host is not converged');
  t.match(table.stdout, /phase: +Offline/);

  // Started again, its first run reports even though nothing changed.
  const again = await steward('run', '--config', config, '--max-runs', '1');
  t.equal(again.code, 0, again.stderr);
  t.equal((await statusOf()).phase, 'Converged', 'back to Converged on the branch');
});

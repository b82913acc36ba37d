import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { containerDoc, docker, uid } from '../helpers/agent.js';
import { createFleetRepo, showFile, startGitServer, statusRef } from '../helpers/git.js';
import { SYSTEMD_IMAGE } from '../helpers/systemd.js';

const exec = promisify(execFile);
const top = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const version = JSON.parse((await import('node:fs')).readFileSync(join(top, 'package.json'), 'utf8')).version as string;
const arch = (await exec('dpkg', ['--print-architecture'])).stdout.trim();
const deb = join(top, 'out', `steward_${version}_${arch}.deb`);

const host = `steward-pkg-${uid()}`;
const sh = (script: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((res) =>
    execFile('docker', ['exec', host, 'sh', '-c', script], { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      res({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        stdout: stdout.trim(),
        stderr: stderr.trim(),
      }),
    ),
  );
const show = async (prop: string) => (await sh(`systemctl show -p ${prop} --value steward`)).stdout;
const until = async (what: string, pred: () => Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
};

t.test(
  'the .deb on a fresh systemd host: enroll, enable, converge, survive kills, hangs, reboots and stops',
  { timeout: 600_000 },
  async (t) => {
    // Always from this checkout: a package left from an older build would test old code.
    // Only the .deb this test installs; dist/ is reused when npm test just built it.
    await exec('bash', [join(top, 'packaging/build.sh'), arch], {
      maxBuffer: 16 << 20,
      env: { ...process.env, PACKAGE_FORMATS: 'deb', PACKAGE_GZIP: '1' },
    });
    t.ok(existsSync(deb), 'built');
    const server = await startGitServer({ token: 'PKG_TOKEN_1' });
    t.teardown(() => server.stop());
    const fleet = await createFleetRepo(server, 'fleet');
    await fleet.commit({ 'README.md': 'fleet\n' });
    const boot = [
      'run',
      '-d',
      '--name',
      host,
      '--hostname',
      host,
      '--network',
      'host',
      '--cap-add',
      'SYS_ADMIN',
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt',
      'apparmor=unconfined',
      '--cgroupns=host',
      '-v',
      '/sys/fs/cgroup:/sys/fs/cgroup:rw',
      '--tmpfs',
      '/run',
      '--tmpfs',
      '/run/lock',
      '--tmpfs',
      '/tmp',
      '-v',
      '/var/run/docker.sock:/var/run/docker.sock',
      SYSTEMD_IMAGE,
      '/lib/systemd/systemd',
    ];
    await exec('docker', boot);
    t.teardown(async () => {
      await exec('docker', ['rm', '-f', host]).catch(() => undefined);
      for (const c of await docker.listContainers({ all: true, filters: { label: [`steward.host=${host}`] } }))
        await docker.getContainer(c.Id).remove({ force: true });
    });
    await until('systemd', async () =>
      ['running', 'degraded'].includes((await sh('systemctl is-system-running')).stdout),
    );

    // Install: the service does not start without a config.
    await exec('docker', ['cp', deb, `${host}:/root/steward.deb`]);
    const install = await sh('dpkg -i /root/steward.deb');
    t.equal(install.code, 0, install.stderr);
    t.equal(
      (await sh('steward version')).stdout,
      `steward ${version} (node 26.10.0, linux/${process.arch})`,
      'its own Node.js runtime',
    );
    t.equal((await sh('systemctl is-enabled steward')).stdout, 'disabled');
    await sh('systemctl start steward');
    t.equal(await show('ActiveState'), 'inactive', 'no config: not started');
    t.match(await show('ConditionResult'), 'no');

    // Enroll and enable: all it takes.
    await sh(
      `mkdir -p /etc/steward && printf 'PKG_TOKEN_1\\n' > /etc/steward/git-token && chmod 600 /etc/steward/git-token`,
    );
    const enroll = await sh(
      `steward enroll --url ${server.url('fleet')} --token-file /etc/steward/git-token --host ${host} --root /opt/kiosk --interval 1s`,
    );
    t.equal(enroll.code, 0, enroll.stderr);
    t.match(enroll.stdout, 'wrote /etc/systemd/system/steward.service.d/enroll.conf');
    const started = Date.now();
    t.equal((await sh('systemctl enable --now steward')).code, 0);
    await until('active', async () => (await show('ActiveState')) === 'active');
    const ready =
      (Number(await show('ActiveEnterTimestampMonotonic')) - Number(await show('ExecMainStartTimestampMonotonic'))) /
      1000;
    t.comment(`cold start to READY: ${ready.toFixed(0)} ms (enable --now returned after ${Date.now() - started} ms)`);
    t.ok(ready > 0, 'active only once READY was sent (Type=notify)');

    // A pushed commit converges; the status branch shows it.
    const rev = await fleet.commit({
      [`hosts/${host}/app.yaml`]: [
        containerDoc(`pkg-${host}`, { image: 'local/busybox:1' }),
        JSON.stringify({
          apiVersion: 'steward/v1',
          kind: 'File',
          metadata: { name: 'conf' },
          spec: { path: '/opt/kiosk/app.conf', content: 'x=1\n' },
        }),
      ].join('\n---\n'),
    });
    await until('converged on the status branch', async () => {
      const text = await showFile(fleet.bare, statusRef(host), `hosts/${host}/status.json`);
      return text !== undefined && JSON.parse(text).appliedRevision === rev && JSON.parse(text).phase === 'Converged';
    });
    t.equal((await sh('cat /opt/kiosk/app.conf')).stdout, 'x=1', 'a file root is writable through the hardened unit');
    const doctor = await sh('steward doctor');
    t.equal(doctor.code, 0, doctor.stdout);
    t.match(doctor.stdout, /ok    git +reachable with the credentials; main at [0-9a-f]{7}/);
    t.match(doctor.stdout, /ok    systemd +systemd 252/);
    t.not(
      (await sh('ls /var/cache/steward/compile/*')).stdout,
      '',
      "the launcher keeps the compiled bundle in Node's compile cache (steward doctor wrote it on exit)",
    );
    // The launcher's malloc settings reach the daemon (1-1.4 MiB of idle RSS, bench/README.md).
    const environ = (await sh(`tr '\\0' '\\n' < /proc/${await show('MainPID')}/environ`)).stdout;
    t.match(environ, /^MALLOC_ARENA_MAX=1$/m, 'the daemon runs with one malloc arena');
    t.match(environ, /^MALLOC_TRIM_THRESHOLD_=0$/m, "and gives its heap's freed top back");
    t.equal((await docker.getContainer(`pkg-${host}`).inspect()).State.Running, true);
    const prio = (await sh(`journalctl -u steward -o json --no-pager | grep '"run finished' | head -1`)).stdout;
    t.match(prio, /"PRIORITY":"6"/, 'journald got the info priority');

    // kill -9: systemd restarts it.
    const restarts = Number(await show('NRestarts'));
    await sh(`kill -9 ${await show('MainPID')}`);
    await until(
      'restarted after kill -9',
      async () => Number(await show('NRestarts')) === restarts + 1 && (await show('ActiveState')) === 'active',
    );
    t.pass('restarted after kill -9');

    // A second agent refuses to start.
    const second = await sh('steward run');
    t.equal(second.code, 1);
    t.match(second.stderr, /another steward \(pid \d+\) is running on this host/);

    // A blocked event loop: the watchdog restarts it.
    await sh(
      `mkdir -p /etc/systemd/system/steward.service.d && printf '[Service]\\nWatchdogSec=3s\\nEnvironment=STEWARD_FAULT=block-on-usr2\\n' > /etc/systemd/system/steward.service.d/zz-test.conf && systemctl daemon-reload && systemctl restart steward`,
    );
    await until('active again', async () => (await show('ActiveState')) === 'active');
    const before = Number(await show('NRestarts'));
    await sh(`kill -USR2 ${await show('MainPID')}`);
    await until(
      'watchdog restart',
      async () => Number(await show('NRestarts')) > before && (await show('ActiveState')) === 'active',
      40_000,
    );
    // The agent spins for 120 s after SIGUSR2: only the watchdog restarts it within the wait above.
    t.match(
      (await sh('journalctl --no-pager | grep -i "steward.service.*watchdog" | tail -3')).stdout,
      /[Ww]atchdog/,
      'systemd logged the watchdog',
    );
    await sh(
      'rm /etc/systemd/system/steward.service.d/zz-test.conf && systemctl daemon-reload && systemctl restart steward',
    );

    // Git down and the host rebooted: it comes up ready and keeps enforcing the last good state.
    await server.stop();
    await exec('docker', ['restart', host]);
    await until(
      'systemd after reboot',
      async () => ['running', 'degraded'].includes((await sh('systemctl is-system-running')).stdout),
      60_000,
    );
    await until('agent active after reboot', async () => (await show('ActiveState')) === 'active');
    await docker
      .getContainer(`pkg-${host}`)
      .remove({ force: true })
      .catch(() => undefined);
    await until(
      'drift corrected offline',
      async () => (await docker.listContainers({ filters: { name: [`^/pkg-${host}$`] } })).length === 1,
    );
    t.pass('offline: the removed container came back from the last fetched commit');

    // systemctl stop: clean and quick.
    const t0 = Date.now();
    await sh('systemctl stop steward');
    const took = Date.now() - t0;
    t.ok(took < 90_000, `stopped in ${took} ms`);
    t.equal(await show('Result'), 'success');
    t.equal(await show('ExecMainStatus'), '0');

    const security = await sh('systemd-analyze security steward --no-pager | tail -1');
    t.comment(`systemd-analyze security: ${security.stdout}`);
    t.match(security.stdout, /Overall exposure level for steward\.service: \d+\.\d/);
    await server.start();
  },
);

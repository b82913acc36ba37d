import t from 'tap';
import { containerDoc, docker } from '../helpers/agent.js';
import { createFleetRepo, startGitServer, type FleetRepo, type GitServer } from '../helpers/git.js';
import { startSystemdHost, writeAgentConfig, type SystemdHost } from '../helpers/systemd.js';

const doc = (kind: string, name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'steward/v1', kind, metadata: { name }, spec });
const unit = (tag: string) =>
  `[Unit]\nDescription=kiosk ${tag}\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n`;

let server: GitServer;
let fleet: FleetRepo;
let host: SystemdHost;
t.before(async () => {
  server = await startGitServer();
  fleet = await createFleetRepo(server, 'fleet');
  host = await startSystemdHost();
  await writeAgentConfig(host, server.url('fleet'));
});
t.teardown(async () => {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`steward.host=${host.name}`] } }))
    await docker.getContainer(c.Id).remove({ force: true });
  await host.remove();
  await server.stop();
});
const once = async () => {
  const r = await host.steward('once');
  return { code: r.code, status: await host.status(), stdout: r.stdout, stderr: r.stderr };
};
const dir = () => `hosts/${host.name}`;

t.test(
  'a unit from Git: written, enabled, started; changed -> restarted; drift by hand corrected; pruned',
  async (t) => {
    await fleet.commit({
      [`${dir()}/kiosk.yaml`]: doc('Service', 'kiosk', {
        unit: 'kiosk.service',
        content: unit('v1'),
        enabled: true,
        state: 'running',
      }),
    });
    let r = await once();
    t.equal(r.code, 0, r.stderr);
    t.match(r.status.resources['Service/kiosk'], {
      action: 'create',
      status: 'Ready',
      message: 'create: unit file does not exist; unit is inactive',
    });
    t.equal(await host.show('kiosk.service', 'ActiveState'), 'active');
    t.equal(await host.show('kiosk.service', 'UnitFileState'), 'enabled');
    t.equal((await host.sh('cat /etc/systemd/system/kiosk.service')).stdout, unit('v1'));
    const started1 = await host.show('kiosk.service', 'ExecMainStartTimestampMonotonic');

    r = await once();
    t.equal(r.status.resources['Service/kiosk']?.action, 'none', 'nothing to do the second time');
    t.equal(
      await host.show('kiosk.service', 'ExecMainStartTimestampMonotonic'),
      started1,
      'not restarted when nothing changed',
    );

    await fleet.commit({
      [`${dir()}/kiosk.yaml`]: doc('Service', 'kiosk', {
        unit: 'kiosk.service',
        content: unit('v2'),
        enabled: true,
        state: 'running',
      }),
    });
    r = await once();
    t.match(r.status.resources['Service/kiosk'], { action: 'update', message: 'update: unit file changed' });
    t.equal(await host.show('kiosk.service', 'Description'), 'kiosk v2', 'daemon-reload happened');
    t.not(
      await host.show('kiosk.service', 'ExecMainStartTimestampMonotonic'),
      started1,
      'restarted on a changed unit file',
    );

    await host.sh('systemctl stop kiosk.service');
    r = await once();
    t.match(r.status.resources['Service/kiosk'], {
      action: 'start',
      driftCorrected: true,
      message: 'start: unit is inactive',
    });
    t.equal(await host.show('kiosk.service', 'ActiveState'), 'active');

    await host.sh('systemctl disable kiosk.service');
    r = await once();
    t.match(r.status.resources['Service/kiosk'], {
      action: 'update',
      driftCorrected: true,
      message: 'update: unit is disabled',
    });
    t.equal(await host.show('kiosk.service', 'UnitFileState'), 'enabled');

    await fleet.commit({
      [`${dir()}/kiosk.yaml`]: null,
      [`${dir()}/keep.yaml`]: doc('File', 'keep', { path: '/etc/kiosk/keep', content: 'k' }),
    });
    r = await once();
    t.match(r.status.resources['Service/kiosk'], { action: 'delete', status: 'Pruned' });
    t.equal(await host.show('kiosk.service', 'ActiveState'), 'inactive');
    t.equal(await host.show('kiosk.service', 'LoadState'), 'not-found');
    t.equal((await host.sh('test -e /etc/systemd/system/kiosk.service')).code, 1, 'unit file removed');
    t.equal(
      (await host.sh('ls /etc/systemd/system/multi-user.target.wants/ | grep -c kiosk')).stdout.trim(),
      '0',
      'disabled',
    );
  },
);

t.test('a Service whose unit changes: the old unit is stopped, disabled and removed; the new one runs', async (t) => {
  await fleet.commit({
    [`${dir()}/ren.yaml`]: doc('Service', 'ren', {
      unit: 'ren-a.service',
      content: unit('a'),
      enabled: true,
      state: 'running',
    }),
  });
  let r = await once();
  t.equal(r.code, 0, r.stderr);
  t.equal(await host.show('ren-a.service', 'ActiveState'), 'active');
  await fleet.commit({
    [`${dir()}/ren.yaml`]: doc('Service', 'ren', {
      unit: 'ren-b.service',
      content: unit('a'),
      enabled: true,
      state: 'running',
    }),
  });
  r = await once();
  t.equal(r.code, 0, r.stderr);
  t.match(r.status.resources['Service/ren'], {
    status: 'Ready',
    action: 'create',
    message:
      'create: unit changed from ren-a.service: it is stopped, disabled and its unit file removed; unit file does not exist; unit is inactive',
  });
  t.equal(await host.show('ren-a.service', 'ActiveState'), 'inactive', 'the old unit is stopped');
  t.equal((await host.sh('test -e /etc/systemd/system/ren-a.service')).code, 1, 'and its unit file removed');
  t.equal(
    (await host.sh('ls /etc/systemd/system/multi-user.target.wants/ | grep -c ren-a')).stdout.trim(),
    '0',
    'and disabled',
  );
  t.equal(await host.show('ren-b.service', 'ActiveState'), 'active', 'the new unit runs');
  const inv = JSON.parse((await host.sh('cat /var/lib/steward/state.json')).stdout).inventory['Service/ren'];
  t.match(
    inv,
    { unit: 'ren-b.service', path: '/etc/systemd/system/ren-b.service' },
    'the inventory names the new unit',
  );
  await fleet.commit({ [`${dir()}/ren.yaml`]: null });
  r = await once();
  t.equal((await host.sh('test -e /etc/systemd/system/ren-b.service')).code, 1, 'pruned by its new name');
});

t.test('an existing unit is managed for enabled/state only, and gets its own state back when pruned', async (t) => {
  await host.sh(
    `printf '${unit('legacy').replace(/\n/g, '\\n')}' > /etc/systemd/system/legacy.service && systemctl daemon-reload`,
  );
  await fleet.commit({
    [`${dir()}/legacy.yaml`]: doc('Service', 'legacy', { unit: 'legacy.service', enabled: true, state: 'running' }),
  });
  let r = await once();
  t.match(r.status.resources['Service/legacy'], { action: 'start', status: 'Ready' });
  t.equal(await host.show('legacy.service', 'ActiveState'), 'active');
  await fleet.commit({
    [`${dir()}/legacy.yaml`]: doc('Service', 'missing', { unit: 'missing.service', state: 'running' }),
  });
  r = await once();
  t.match(r.status.resources['Service/missing'], { status: 'Failed', code: 'E_UNIT_NOT_FOUND' });
  t.match(r.status.resources['Service/legacy'], {
    status: 'Pruned',
    message: 'delete: no longer in Git: back to its state before Steward (disabled, stopped)',
  });
  t.equal(await host.show('legacy.service', 'ActiveState'), 'inactive');
  t.equal(await host.show('legacy.service', 'UnitFileState'), 'disabled');
  t.equal(
    (await host.sh('cat /etc/systemd/system/legacy.service')).code,
    0,
    'its unit file, not written by Steward, stays',
  );
  await fleet.commit({ [`${dir()}/legacy.yaml`]: null });
});

t.test('a unit file Steward replaces is kept and put back, with its mode, when the Service is pruned', async (t) => {
  await host.sh(
    `printf '${unit('vendor').replace(/\n/g, '\\n')}' > /etc/systemd/system/vendor.service && chmod 0640 /etc/systemd/system/vendor.service && systemctl daemon-reload`,
  );
  await fleet.commit({
    [`${dir()}/vendor.yaml`]: doc('Service', 'vendor', {
      unit: 'vendor.service',
      content: unit('ours'),
      state: 'running',
    }),
  });
  let r = await once();
  t.match(r.status.resources['Service/vendor'], { status: 'Ready' });
  t.equal(await host.show('vendor.service', 'Description'), 'kiosk ours');
  await fleet.commit({
    [`${dir()}/vendor.yaml`]: null,
    [`${dir()}/keep.yaml`]: doc('File', 'keep', { path: '/etc/kiosk/keep', content: 'k' }),
  });
  r = await once();
  t.match(r.status.resources['Service/vendor'], { status: 'Pruned' });
  t.equal(
    (await host.sh('cat /etc/systemd/system/vendor.service')).stdout,
    unit('vendor'),
    'the original unit file is back',
  );
  t.equal((await host.sh('stat -c %a /etc/systemd/system/vendor.service')).stdout.trim(), '640', 'with its mode');
  t.equal(await host.show('vendor.service', 'Description'), 'kiosk vendor', 'and systemd reads it again');
});

t.test(
  'restartOn: a changed File restarts the Container and the Service naming it; nothing restarts otherwise',
  async (t) => {
    const cname = `reader-${host.name}`;
    const bundle = (conf: string) => ({
      [`${dir()}/app.yaml`]: [
        doc('File', 'conf', { path: '/etc/kiosk/app.conf', content: conf }),
        doc('Service', 'app', {
          unit: 'app.service',
          content: unit('app'),
          enabled: true,
          state: 'running',
          restartOn: ['File/conf'],
          dependsOn: ['File/conf'],
        }),
        containerDoc(cname, { image: 'local/busybox:1', restartOn: ['File/conf'] }),
      ].join('\n---\n'),
    });
    await fleet.commit(bundle('color=blue\n'));
    let r = await once();
    t.equal(r.status.phase, 'Converged', JSON.stringify(r.status.errors));
    const unitStart = await host.show('app.service', 'ExecMainStartTimestampMonotonic');
    const ctrStart = (await docker.getContainer(cname).inspect()).State.StartedAt;

    r = await once();
    t.equal(
      await host.show('app.service', 'ExecMainStartTimestampMonotonic'),
      unitStart,
      'unit not restarted when nothing changed',
    );
    t.equal(
      (await docker.getContainer(cname).inspect()).State.StartedAt,
      ctrStart,
      'container not restarted when nothing changed',
    );

    await fleet.commit(bundle('color=green\n'));
    r = await once();
    t.match(r.status.resources['Service/app'], {
      action: 'restart',
      message: 'restart: File/conf changes in this run (restartOn)',
    });
    t.match(r.status.resources[`Container/${cname}`], { action: 'restart', status: 'Ready' });
    t.not(await host.show('app.service', 'ExecMainStartTimestampMonotonic'), unitStart, 'the unit restarted');
    t.not((await docker.getContainer(cname).inspect()).State.StartedAt, ctrStart, 'the container restarted');
    t.equal((await host.sh('cat /etc/kiosk/app.conf')).stdout, 'color=green\n');
  },
);

t.test('a failed resource skips what depends on it; the rest applies', async (t) => {
  await fleet.commit({
    [`${dir()}/app.yaml`]: [
      doc('Service', 'broken', {
        unit: 'broken.service',
        content: '[Service]\nExecStart=/nonexistent/binary\n',
        state: 'running',
      }),
      doc('File', 'after', { path: '/etc/kiosk/after', content: 'x', dependsOn: ['Service/broken'] }),
      doc('File', 'independent', { path: '/etc/kiosk/independent', content: 'y' }),
    ].join('\n---\n'),
  });
  const r = await once();
  t.equal(r.code, 1);
  t.match(r.status.resources['Service/broken'], { status: 'Failed', code: 'E_UNIT_START' });
  t.match(r.status.resources['File/after'], { status: 'Skipped', message: 'skipped: Service/broken failed' });
  t.match(r.status.resources['File/independent'], { status: 'Ready' });
  t.equal((await host.sh('cat /etc/kiosk/independent')).stdout, 'y');
  t.equal((await host.sh('test -e /etc/kiosk/after')).code, 1);
});

import t from 'tap';
import {
  fieldHashes,
  parseMemory,
  parsePort,
  specHash,
  toCreateOptions,
} from '../../agent/resources/container-spec.js';
import { Fingerprint } from '../../agent/host/fingerprint.js';
import type { ContainerSpec } from '../../agent/types/container.js';

const FP = new Fingerprint(Buffer.alloc(32, 1));

t.test('ports: every form of the contract', async (t) => {
  const table: Array<[string, ReturnType<typeof parsePort>]> = [
    ['80', { key: '80/tcp', hostIp: '', hostPort: '' }],
    ['8080:80', { key: '80/tcp', hostIp: '', hostPort: '8080' }],
    ['127.0.0.1:53:53/udp', { key: '53/udp', hostIp: '127.0.0.1', hostPort: '53' }],
    ['[::1]:8443:443', { key: '443/tcp', hostIp: '::1', hostPort: '8443' }],
    ['9000:9000/sctp', { key: '9000/sctp', hostIp: '', hostPort: '9000' }],
  ];
  for (const [text, want] of table) t.same(parsePort(text), want, text);
});

t.test('memory sizes', async (t) => {
  t.equal(parseMemory('256m'), 256 * 1024 * 1024);
  t.equal(parseMemory('1G'), 1024 ** 3);
  t.equal(parseMemory('1.5k'), 1536);
  t.equal(parseMemory('1000'), 1000);
});

const FULL_SPEC: ContainerSpec = {
  image: 'local/busybox:1',
  command: ['httpd', '-f'],
  entrypoint: ['/bin/sh', '-c'],
  env: { A: '1', B: 'CANARY_ENV' },
  ports: ['8080:80', '127.0.0.1:53:53/udp', '8081:80'],
  volumes: ['/opt/kiosk/data:/data:ro', 'cache:/cache'],
  restart: 'on-failure',
  user: 'nobody',
  workingDir: '/srv',
  labels: { team: 'kiosk' },
  healthcheck: { test: 'wget -q -O- localhost', interval: '10s', timeout: '2s', retries: 3, startPeriod: '1m' },
  memory: '64m',
  cpus: 0.5,
  networkMode: 'bridge',
};

t.test('the create request carries the whole spec and the ownership labels', async (t) => {
  const opts = toCreateOptions(
    'web',
    'Container/web',
    'edge-1',
    'c0ffee',
    FULL_SPEC,

    FP,
  );
  t.same(opts.Cmd, ['httpd', '-f']);
  t.same(opts.Entrypoint, ['/bin/sh', '-c']);
  t.same(opts.Env, ['A=1', 'B=CANARY_ENV']);
  t.same(opts.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  t.same(opts.HostConfig?.PortBindings, {
    '80/tcp': [
      { HostIp: '', HostPort: '8080' },
      { HostIp: '', HostPort: '8081' },
    ],
    '53/udp': [{ HostIp: '127.0.0.1', HostPort: '53' }],
  });
  t.same(opts.HostConfig?.Binds, ['/opt/kiosk/data:/data:ro', 'cache:/cache']);
  t.same(opts.HostConfig?.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 0 });
  t.equal(opts.HostConfig?.Memory, 64 * 1024 * 1024);
  t.equal(opts.HostConfig?.NanoCpus, 500_000_000);
  t.equal(opts.HostConfig?.NetworkMode, 'bridge');
  t.equal(opts.User, 'nobody');
  t.equal(opts.WorkingDir, '/srv');
  t.same(opts.Healthcheck, {
    Test: ['CMD-SHELL', 'wget -q -O- localhost'],
    Interval: 10e9,
    Timeout: 2e9,
    Retries: 3,
    StartPeriod: 60e9,
  });
  t.match(opts.Labels, {
    team: 'kiosk',
    'steward.managed': 'true',
    'steward.host': 'edge-1',
    'steward.id': 'Container/web',
    'steward.revision': 'c0ffee',
  });
  t.equal(
    opts.Labels?.['steward.hash'],
    specHash({ ...FULL_SPEC, env: { B: 'CANARY_ENV', A: '1' } }, FP),
    'hash ignores key order',
  );
  t.notMatch(JSON.stringify(opts.Labels), /CANARY/, 'env values are not in the labels');
});

t.test('hashes: defaults equal their omission, pull and dependencies do not count', async (t) => {
  const base = { image: 'a:1' };
  t.equal(specHash(base, FP), specHash({ ...base, restart: 'unless-stopped' }, FP));
  t.equal(specHash(base, FP), specHash({ ...base, pull: 'Always', dependsOn: ['File/x'] }, FP));
  t.not(specHash(base, FP), specHash({ ...base, env: { A: '1' } }, FP));
  const before = fieldHashes({ image: 'a:1', env: { A: '1' } }, FP);
  const after = fieldHashes({ image: 'a:1', env: { A: '2' } }, FP);
  t.equal(before.image, after.image);
  t.not(before.env, after.env);
  t.equal(
    toCreateOptions('x', 'Container/x', 'h', 'r', { image: 'a', restart: 'no' }, FP).HostConfig?.RestartPolicy?.Name,
    '',
    'restart: no is the empty policy',
  );
});

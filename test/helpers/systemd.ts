import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { HostStatus } from '../../agent/types/host-status.js';
import { uid } from './agent.js';

const exec = promisify(execFile);
const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SYSTEMD_IMAGE = 'local/systemd:bookworm';

/**
 * A real systemd host: systemd as PID 1 in a container (TESTBED.md), with this machine's node,
 * this checkout at /opt/steward (read-only), the Docker socket, and the host network (so the
 * test Git server on 127.0.0.1 is reachable). The agent runs inside it as it would on a device.
 */
export interface SystemdHost {
  name: string;
  /** The host folder mounted at /etc/steward inside. */
  etc: string;
  sh(script: string): Promise<{ code: number; stdout: string; stderr: string }>;
  steward(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  status(): Promise<HostStatus>;
  show(unit: string, prop: string): Promise<string>;
  remove(): Promise<void>;
}

export async function startSystemdHost(): Promise<SystemdHost> {
  const name = `steward-sd-${uid()}`;
  const etc = await mkdtemp(join(tmpdir(), 'steward-etc-'));
  await exec('docker', [
    'run',
    '-d',
    '--name',
    name,
    '--hostname',
    name,
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
    `${process.execPath}:/usr/bin/node:ro`,
    '-v',
    `${repoRoot}:/opt/steward:ro`,
    '-v',
    '/var/run/docker.sock:/var/run/docker.sock',
    '-v',
    `${etc}:/etc/steward`,
    '--label',
    'steward.test=systemd-host',
    SYSTEMD_IMAGE,
    '/lib/systemd/systemd',
  ]);
  const sh = (script: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      execFile('docker', ['exec', name, 'sh', '-c', script], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
        res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  for (let i = 0; i < 100; i++) {
    const r = await sh('systemctl is-system-running');
    if (['running', 'degraded'].includes(r.stdout.trim())) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    etc,
    sh,
    steward: (...args) => sh(`node /opt/steward/dist/agent/main.js ${args.map((a) => `'${a}'`).join(' ')}`),
    async status() {
      return JSON.parse((await sh('cat /var/lib/steward/status.json')).stdout) as HostStatus;
    },
    async show(unit, prop) {
      return (await sh(`systemctl show -p ${prop} --value ${unit}`)).stdout.trim();
    },
    async remove() {
      await exec('docker', ['rm', '-f', name]).catch(() => undefined);
    },
  };
}

/** Writes /etc/steward/agent.yaml inside the host. */
export async function writeAgentConfig(host: SystemdHost, url: string, extra = ''): Promise<void> {
  await writeFile(
    join(host.etc, 'agent.yaml'),
    `host: ${host.name}\nsource:\n  url: ${url}\n  interval: 1s\nfiles:\n  roots: [/etc/kiosk, /opt/kiosk]\n${extra}`,
  );
}

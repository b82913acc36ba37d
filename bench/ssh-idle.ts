// What an idle poll costs over SSH, next to smart HTTP: Git requests (exchanges), bytes on the
// wire and the daemon's CPU per poll, with the connection kept between polls and with a new one
// per poll (key exchange, host key check and authentication every time). Prints; asserts nothing.
//   node --import ./test/loader/register.mjs bench/ssh-idle.ts [polls=200]
// Needs the testbed (test/testbed.sh: dockerd, the git-shell account, openssh-server).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../agent/config/load.js';
import { configRemote, readGitCredentials } from '../agent/source/remote.js';
import { GitRepo } from '../agent/source/repo.js';
import { SshTransport } from '../agent/source/ssh.js';
import type { HttpStats } from '../agent/source/http.js';
import { fileDoc, makeAgent, type TestAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';
import { shareWithSsh, startSshd } from '../test/helpers/sshd.js';

const exec = promisify(execFile);
const polls = Number(process.argv[2] ?? 200);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await exec('ssh', ['-V'])).stderr.trim()}; ${polls} idle polls each`,
);

const dir = await mkdtemp(join(tmpdir(), 'steward-bench-ssh-'));
const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
await shareWithSsh(fleet.bare);
const sshd = await startSshd();
const key = join(dir, 'deploy');
await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key]);
await sshd.authorize(await readFile(`${key}.pub`, 'utf8'));
await writeFile(join(dir, 'known_hosts'), sshd.knownHosts);
const sshAuth = `  auth:\n    sshKeyFile: ${key}\n    knownHostsFile: ${join(dir, 'known_hosts')}`;
const root = join(dir, 'root');
const files = (host: string) =>
  Object.fromEntries(
    Array.from({ length: 10 }, (_, i) => [
      `hosts/${host}/f${i}.yaml`,
      fileDoc(join(root, host, `f${i}`), `${i}\n`, `f${i}`),
    ]),
  );

interface Figures {
  requests: number;
  sent: number;
  received: number;
  cpuMs: number;
  wallMs: number;
}

async function measure(poll: () => Promise<unknown>, stats: HttpStats): Promise<Figures> {
  for (let i = 0; i < 5; i++) await poll(); // settle: the status report, the first compile
  const before = { ...stats };
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < polls; i++) await poll();
  const used = process.cpuUsage(cpu);
  return {
    requests: (stats.requests - before.requests) / polls,
    sent: (stats.bytesSent - before.bytesSent) / polls,
    received: (stats.bytesReceived - before.bytesReceived) / polls,
    cpuMs: (used.user + used.system) / 1000 / polls,
    wallMs: (performance.now() - t0) / polls,
  };
}

const show = (what: string, f: Figures) =>
  console.log(
    `${what.padEnd(44)} ${f.requests.toFixed(2)} req, ${f.sent.toFixed(0).padStart(5)} B sent, ${f.received.toFixed(0).padStart(5)} B received, ${f.cpuMs.toFixed(2).padStart(6)} ms CPU, ${f.wallMs.toFixed(2).padStart(6)} ms wall per poll`,
  );

const agents: TestAgent[] = [];
try {
  // 1. The whole idle run of the agent (ls-refs, observe 10 files, nothing to report), in process.
  const http = await makeAgent({ url: server.url('fleet'), extra: `files: { roots: [${root}] }`, interval: '1m' });
  const ssh = await makeAgent({
    url: sshd.url(fleet.bare),
    sourceExtra: sshAuth,
    extra: `files: { roots: [${root}] }`,
    interval: '1m',
  });
  agents.push(http, ssh);
  await fleet.commit({ ...files(http.host), ...files(ssh.host) });
  show('agent run, smart HTTP', await measure(() => http.once(), http.stats));
  show('agent run, SSH (kept connection)', await measure(() => ssh.once(), ssh.stats));

  // 2. The Git exchange alone (ls-refs of the branch), kept connection vs a new one per poll.
  const config = await loadConfig(ssh.configFile);
  const creds = await readGitCredentials(config);
  for (const keep of [true, false]) {
    const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
    const transport = new SshTransport({
      url: config.source.url,
      username: config.source.username,
      auth: creds.ssh!,
      timeoutMs: 10_000,
      stats,
      keepMs: keep ? 60_000 : 0,
    });
    const repo = new GitRepo({
      gitdir: join(dir, `probe-${keep}.git`),
      url: config.source.url,
      ...configRemote(config, creds),
      transport,
    });
    await repo.init();
    // keepMs 0: the connection closes as soon as the exchange ends; wait for it, so every poll logs in.
    const poll = async () => {
      await repo.remoteHead('main');
      if (!keep) await new Promise((r) => setTimeout(r, 5));
    };
    show(`ls-refs alone, SSH ${keep ? 'kept connection' : 'new connection per poll'}`, await measure(poll, stats));
    transport.close();
  }
  const httpStats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const httpRepo = new GitRepo({
    gitdir: join(dir, 'probe-http.git'),
    url: server.url('fleet'),
    ...configRemote(await loadConfig(http.configFile), {}, { stats: httpStats }),
  });
  await httpRepo.init();
  show('ls-refs alone, smart HTTP', await measure(() => httpRepo.remoteHead('main'), httpStats));
  console.log(
    'bytes: SSH counts the TCP stream (encryption, MACs, channel setup included); HTTP counts request and response bodies.',
  );
} finally {
  for (const a of agents) await a.cleanup();
  await sshd.stop();
  await server.stop();
}

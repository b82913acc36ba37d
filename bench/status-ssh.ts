// What one status report costs over SSH as the fleet grows (issue 14): git-receive-pack has no
// protocol v2, so every push over SSH starts with its v0 ref advertisement, one line per ref on
// the server, whatever the client wants. N host branches are written by git fast-import
// (test/helpers/prefill.ts), then a few hosts report over the real sshd + git-shell on loopback with the
// real publish code, connection kept between reports as the daemon keeps it. Per report: Git
// exchanges, bytes on the TCP stream (encryption and channel setup included), the advertisement's
// own size, and the client's CPU; the same over smart HTTP beside it. Prints; asserts nothing.
//   node --import ./test/loader/register.mjs bench/status-ssh.ts [N...=10 1000 10000] [reports=10]
// Needs the testbed (test/testbed.sh: the git-shell account, openssh-server).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHttpClient, type HttpStats } from '../agent/source/http.js';
import { GitRepo } from '../agent/source/repo.js';
import { SshTransport } from '../agent/source/ssh.js';
import { readSshAuth } from '../agent/source/sshauth.js';
import { hostBranch } from '../agent/status/fleet.js';
import { publishStatus } from '../agent/status/publish.js';
import { memoryLogger } from '../test/helpers/agent.js';
import { createFleetRepo, gitOut, startGitServer } from '../test/helpers/git.js';
import { shareWithSsh, startSshd } from '../test/helpers/sshd.js';
import { convergedDoc } from '../test/helpers/status.js';
import { prefillHostBranches } from '../test/helpers/prefill.js';

const exec = promisify(execFile);
const args = process.argv.slice(2).map(Number);
const sizes = args.length > 1 ? args.slice(0, -1) : [10, 1000, 10000];
const reports = args.length > 1 ? args.at(-1)! : 10;
const REPORTERS = 3;
const REV = 'e'.repeat(40);
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await exec('ssh', ['-V'])).stderr.trim()}; ${REPORTERS} reporters x ${reports} heartbeats per fleet size`,
);

const dir = await mkdtemp(join(tmpdir(), 'steward-bench-status-ssh-'));
const server = await startGitServer();
const sshd = await startSshd();
const key = join(dir, 'deploy');
await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key]);
await sshd.authorize(await readFile(`${key}.pub`, 'utf8'));
await writeFile(join(dir, 'known_hosts'), sshd.knownHosts);
const auth = await readSshAuth({ file: join(dir, 'agent.yaml') }, key, join(dir, 'known_hosts'));
const log = memoryLogger([]);

const zero = (): HttpStats => ({ requests: 0, bytesSent: 0, bytesReceived: 0 });
const line = (what: string, branches: number, n: number, s: HttpStats, cpuMs: number) =>
  console.log(
    `${String(branches).padStart(6)} branches, ${what.padEnd(36)} ${(s.requests / n).toFixed(2)} req, ${Math.round(s.bytesSent / n)} B sent, ${Math.round(s.bytesReceived / n)} B received, ${(cpuMs / n).toFixed(1)} ms client CPU per report`,
  );

async function reporters(bare: string, repoName: string, ssh: boolean) {
  return Promise.all(
    Array.from({ length: REPORTERS }, async (_, i) => {
      const stats = zero();
      const name = `edge-${String(i).padStart(5, '0')}`;
      const gitdir = join(dir, `${repoName}-${ssh ? 'ssh' : 'http'}-${i}`, 'status.git');
      const transport = ssh
        ? new SshTransport({ url: sshd.url(bare), username: 'git', auth, timeoutMs: 60_000, stats, keepMs: 600_000 })
        : undefined;
      const url = server.url(repoName);
      const http = createHttpClient({ timeoutMs: 60_000, stats });
      const repo = new GitRepo({ gitdir, url, headers: {}, http, ...(transport ? { transport } : {}) });
      await repo.init();
      return { name, repo, stats, transport };
    }),
  );
}

async function run(n: number) {
  const repoName = `fleet-${n}`;
  const fleet = await createFleetRepo(server, repoName);
  await fleet.commit({ 'README.md': 'fleet\n' });
  await prefillHostBranches(
    fleet.bare,
    Array.from({ length: n }, (_, i) => `edge-${String(i).padStart(5, '0')}`),
    REV,
    1,
  );
  await exec('git', ['--git-dir', fleet.bare, 'pack-refs', '--all']);
  await shareWithSsh(fleet.bare);
  const refs = (await gitOut(fleet.bare, 'for-each-ref', '--format=%(objectname) %(refname)')).split('\n');
  // What receive-pack's advertisement is (one pkt-line per ref, the first with its capabilities).
  const advertised = refs.reduce((sum, r) => sum + 4 + r.length + 1, 0) + 200;
  console.log(
    `${String(n).padStart(6)} branches: receive-pack advertisement about ${(advertised / 1024).toFixed(1)} KiB`,
  );
  for (const ssh of [false, true]) {
    const rs = await reporters(fleet.bare, repoName, ssh);
    const publish = (r: (typeof rs)[number]) =>
      publishStatus(r.repo, hostBranch('steward-status', r.name), convergedDoc(r.name, REV, new Date()), log, {
        own: true,
        deadlineMs: 120_000,
      });
    for (const r of rs) await publish(r); // first report: the store is new, the branch exists
    const total = zero();
    const cpu0 = process.cpuUsage();
    for (const r of rs) {
      const before = { ...r.stats };
      for (let k = 0; k < reports; k++) await publish(r);
      total.requests += r.stats.requests - before.requests;
      total.bytesSent += r.stats.bytesSent - before.bytesSent;
      total.bytesReceived += r.stats.bytesReceived - before.bytesReceived;
    }
    const used = process.cpuUsage(cpu0);
    const what = `heartbeat over ${ssh ? 'SSH (kept connection)' : 'smart HTTP'}`;
    line(what, n, REPORTERS * reports, total, (used.user + used.system) / 1000);
    for (const r of rs) r.transport?.close();
  }
}

try {
  for (const n of sizes) await run(n);
  console.log(
    'bytes: SSH counts the TCP stream (encryption, MACs, channel setup included); HTTP counts request and response bodies.',
  );
} finally {
  await sshd.stop();
  await server.stop();
}

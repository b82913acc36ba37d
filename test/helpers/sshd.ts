import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** The account test/testbed.sh makes: login shell git-shell, unlocked, `safe.directory = *`. */
export const GIT_USER = 'steward-git';

export interface SshServer {
  port: number;
  dir: string;
  /** ssh://steward-git@127.0.0.1:PORT<path> */
  url(path: string): string;
  /** known_hosts line(s) for this server's host keys. */
  knownHosts: string;
  /** Adds a public key line (with options) to authorized_keys. */
  authorize(line: string): Promise<void>;
  /** Ends the listener and every session (connections are cut). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Ends the sessions but keeps listening: what a server restart or an idle cut does to a kept connection. */
  dropSessions(): Promise<void>;
  /** sshd's log so far. */
  log(): string;
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/**
 * A real OpenSSH sshd on loopback (as TESTBED.md describes), in the foreground as a child of the
 * test: its own host key, config and authorized_keys; the git-shell account serves the repos.
 * `acceptEnv: false` is Debian's stock config, which drops GIT_PROTOCOL (protocol v0 only).
 */
export async function startSshd(opts: { acceptEnv?: boolean; hostKeyType?: 'ed25519' | 'ecdsa' | 'rsa' } = {}) {
  try {
    await exec('id', [GIT_USER]);
  } catch {
    throw new Error(
      `no ${GIT_USER} account: run test/testbed.sh (it makes the git-shell user the SSH tests log in as)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'steward-sshd-'));
  await chmod(dir, 0o755);
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const type = opts.hostKeyType ?? 'ed25519';
  await exec('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', join(dir, 'host_key')]);
  await writeFile(join(dir, 'authorized_keys'), '', { mode: 0o644 });
  const port = await freePort();
  const config = [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    `AllowUsers ${GIT_USER}`,
    'LogLevel VERBOSE',
    ...(opts.acceptEnv === false ? [] : ['AcceptEnv GIT_PROTOCOL']),
  ];
  await writeFile(join(dir, 'sshd_config'), config.join('\n') + '\n');
  const pub = (await readFile(join(dir, 'host_key.pub'), 'utf8')).trim().split(' ');
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child!.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes(`listening on 127.0.0.1 port ${port}`)) resolve();
      });
      child!.once('exit', (code) => reject(new Error(`sshd exited ${code}: ${log}`)));
    });
  };
  const dropSessions = async () => {
    // The per-connection sshd processes are children of the listener (the -D one).
    await exec('pkill', ['-TERM', '-P', String(child!.pid)]).catch(() => undefined);
  };
  await start();
  const server: SshServer = {
    port,
    dir,
    url: (path) => `ssh://${GIT_USER}@127.0.0.1:${port}${path}`,
    knownHosts: `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}\n`,
    async authorize(line) {
      await writeFile(join(dir, 'authorized_keys'), line.trim() + '\n', { flag: 'a' });
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      await dropSessions();
      const c = child;
      await new Promise((r) => {
        c.once('exit', r);
        c.kill('SIGTERM');
      });
    },
    start,
    dropSessions,
    log: () => log,
  };
  return server;
}

/**
 * Lets the git-shell account read and push to a bare repo the tests (root) own: the directories
 * on the way are traversable and the repo shared (git keeps new files and directories writable).
 */
export async function shareWithSsh(bare: string): Promise<void> {
  await exec('git', ['--git-dir', bare, 'config', 'core.sharedRepository', '0666']);
  await exec('chmod', ['-R', 'a+rwX', bare]);
  for (let d = join(bare, '..'); d.startsWith(tmpdir() + '/'); d = join(d, '..')) await chmod(d, 0o755);
}

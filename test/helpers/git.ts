import type { SigningKey } from './signing.js';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const exec = promisify(execFile);
const serverScript = join(dirname(fileURLToPath(import.meta.url)), 'git-server.mjs');

export interface GitServer {
  root: string;
  port: number;
  /** http://127.0.0.1:PORT/NAME.git (https with opts.tls; stats and setDelay speak http only) */
  url(name: string): string;
  stop(): Promise<void>;
  /** Holds every answer this long from now on (a slow server). */
  setDelay(ms: number): Promise<void>;
  /** Requests served so far, how many were refused with 401, and the server's CPU (git http-backend included). */
  stats(): Promise<{ requests: number; unauthorized: number; cpuSeconds: number }>;
  /** Starts it again on the same port (after stop). */
  start(): Promise<void>;
}

/** Starts git http-backend behind Node's HTTP server in a child process, on a free port. */
export async function startGitServer(
  opts: { token?: string; v2?: boolean; root?: string; port?: number; tls?: { cert: string; key: string } } = {},
): Promise<GitServer> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'steward-git-')));
  let child: ChildProcess | undefined;
  let port = opts.port ?? 0;
  const launch = async () => {
    const args = [serverScript, root, '--port', String(port), '--exit-with-parent'];
    if (opts.token) args.push('--token', opts.token);
    if (opts.v2 === false) args.push('--no-v2');
    if (opts.tls) args.push('--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
    // stdin: the server exits when it closes (this process died). stderr is not inherited: a
    // server outliving its test must never hold the test runner's output pipe open.
    child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
    port = await new Promise<number>((resolve, reject) => {
      child!.stdout!.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()).port));
      child!.once('exit', (code) => reject(new Error(`git server exited ${code}`)));
    });
  };
  await launch();
  return {
    root,
    get port() {
      return port;
    },
    url: (name) => `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/${name}.git`,
    async stop() {
      if (!child || child.exitCode !== null) return;
      const c = child;
      await new Promise((r) => {
        c.once('exit', r);
        c.kill('SIGKILL');
      });
    },
    start: launch,
    async setDelay(ms) {
      await fetch(`http://127.0.0.1:${port}/_delay?ms=${ms}`);
    },
    async stats() {
      const res = await fetch(`http://127.0.0.1:${port}/_stats`);
      return (await res.json()) as { requests: number; unauthorized: number; cpuSeconds: number };
    },
  };
}

/** A bare repo on the server plus a work clone to commit into. */
export interface FleetRepo {
  bare: string;
  work: string;
  /** Writes (or with null deletes) files, commits and pushes; returns the new commit. */
  commit(
    files: Record<string, string | Buffer | null>,
    message?: string,
    opts?: { sign?: SigningKey; env?: Record<string, string> },
  ): Promise<string>;
  git(...args: string[]): Promise<string>;
}

export async function createFleetRepo(server: GitServer, name: string): Promise<FleetRepo> {
  const bare = join(server.root, `${name}.git`);
  await exec('git', ['init', '-q', '--bare', '-b', 'main', bare]);
  const work = await mkdtemp(join(tmpdir(), `steward-work-${name}-`));
  const gitWith = async (env: Record<string, string>, ...args: string[]) =>
    (
      await exec('git', ['-C', work, ...args], {
        env: {
          ...process.env,
          ...env,
          GIT_AUTHOR_NAME: 'ops',
          GIT_AUTHOR_EMAIL: 'ops@example.com',
          GIT_COMMITTER_NAME: 'ops',
          GIT_COMMITTER_EMAIL: 'ops@example.com',
        },
      })
    ).stdout.trim();
  const git = (...args: string[]) => gitWith({}, ...args);
  await exec('git', ['init', '-q', '-b', 'main', work]);
  await git('remote', 'add', 'origin', bare);
  let n = 0;
  return {
    bare,
    work,
    git,
    async commit(files, message, opts = {}) {
      for (const [path, content] of Object.entries(files)) {
        const full = join(work, path);
        if (content === null) await rm(full, { force: true, recursive: true });
        else {
          await mkdir(dirname(full), { recursive: true });
          await writeFile(full, content);
        }
      }
      await git('add', '-A');
      const sign = opts.sign ? [...opts.sign.config, 'commit', '-S'] : ['commit'];
      await gitWith(
        { ...opts.sign?.env, ...opts.env },
        ...sign,
        '-q',
        '--allow-empty',
        '-m',
        message ?? `change ${++n}`,
      );
      await git('push', '-q', 'origin', 'HEAD:main');
      return git('rev-parse', 'HEAD');
    },
  };
}

/** Reads a file of a branch in a bare repo (undefined when absent). */
export async function showFile(bare: string, branch: string, path: string): Promise<string | undefined> {
  try {
    return (await exec('git', ['--git-dir', bare, 'show', `${branch}:${path}`], { maxBuffer: 64 * 1024 * 1024 }))
      .stdout;
  } catch {
    return undefined;
  }
}

export async function gitOut(bare: string, ...args: string[]): Promise<string> {
  return (await exec('git', ['--git-dir', bare, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
}

/** A host's own status branch (agent/status/fleet.ts hostBranch, with the default status.branch). */
export const statusRef = (host: string): string => `steward-status-by-host/${host}`;

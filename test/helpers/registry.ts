import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * A real registry that needs a login (Debian's docker-registry, distribution 2.8, htpasswd auth)
 * on a free loopback port. The engine treats 127.0.0.0/8 registries as insecure-allowed, so the
 * docker CLI can log in and push to it over plain HTTP.
 */
export interface Registry {
  /** "127.0.0.1:PORT" */
  address: string;
  user: string;
  password: string;
  /** Tags `image` as address/repo:tag, pushes it, removes the local tag: a pull has to fetch it. */
  push(image: string, repoTag: string): Promise<string>;
  stop(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });

export async function startRegistry(user = 'fleet', password = `pw-${Date.now()}`): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'stw-registry-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const { stdout } = await exec('htpasswd', ['-Bbn', user, password]);
  await writeFile(join(dir, 'htpasswd'), stdout);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
      `http: { addr: "${address}" }`,
      `auth: { htpasswd: { realm: steward-test, path: ${join(dir, 'htpasswd')} } }`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://${address}/v2/`).then(
      (r) => r.status === 401,
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const dockerConfig = join(dir, 'docker-cli');
  const cli = (args: string[], input?: string) =>
    new Promise<void>((resolve, reject) => {
      const p = spawn('docker', ['--config', dockerConfig, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d) => (err += d));
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker ${args[0]}: ${err}`))));
      p.stdin!.end(input ?? '');
    });
  await cli(['login', address, '-u', user, '--password-stdin'], password);
  return {
    address,
    user,
    password,
    async push(image, repoTag) {
      const ref = `${address}/${repoTag}`;
      await cli(['tag', image, ref]);
      await cli(['push', '-q', ref]);
      await cli(['rmi', ref]);
      return ref;
    },
    async stop() {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

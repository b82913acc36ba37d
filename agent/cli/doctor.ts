import { access, constants, lstat, mkdir, mkdtemp, rm } from '../files.js';
import { SecretKeys } from '../config/keys.js';
import { RegistryAuth } from '../config/registry.js';
import { loadTrust } from '../source/verify.js';
import { existsSync } from 'node:fs';
import { readTokenFile, type AgentConfig } from '../config/load.js';
import { pendingNotices } from '../reconcile/undelivered.js';
import { originOf, reachReceiver } from '../status/notify.js';
import { createDocker } from '../host/docker.js';
import { configRemote, readGitCredentials } from '../source/remote.js';
import { GitRepo } from '../source/repo.js';
import { hostName, listedTypes } from '../source/knownhosts.js';
import { parseSshUrl, SshTransport } from '../source/ssh.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, configFrom, configOption, type ExitCode, type Io } from './common.js';

export const help =
  'steward doctor [--config FILE]   check this host: config, Git credentials (SSH key and host key), Docker socket, systemd, file roots, notify receivers';

type Check = [name: string, run: () => Promise<string>];

/** Runs every check, prints one line each (ok / FAIL with the reason); exit 1 when one failed. */
export async function doctor(argv: string[], io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, configOption);
  let config: AgentConfig;
  try {
    config = await configFrom(values);
    io.out(
      `ok    config      ${config.file} (host ${config.host}, ${config.source.url} ${config.source.branch}, paths ${config.source.paths.join(', ')})`,
    );
    if (config.source.urlPassword)
      io.out(
        'warn  config      source.url carries a password: it is used but never stored or printed; move it to a file named by source.auth.tokenFile',
      );
  } catch (err) {
    io.out(`FAIL  config      ${(err as Error).message.split('\n').join('; ')}`);
    return 1;
  }
  const checks: Check[] = [
    ...(config.source.ssh ? ([['ssh', () => checkSsh(config)]] as Check[]) : []),
    ['git', () => checkGit(config, signal)],
    ['docker', () => checkDocker(config)],
    ['systemd', checkSystemd],
    ['state', () => checkState(config)],
    ['file roots', () => checkRoots(config)],
    ...(config.source.verify ? ([['signatures', () => checkTrust(config)]] as Check[]) : []),
    ...(config.secrets ? ([['secrets', () => checkSecrets(config)]] as Check[]) : []),
    ...(config.docker.authFile ? ([['registries', () => checkRegistries(config)]] as Check[]) : []),
    ...(config.notify.length > 0 ? ([['notify', () => checkNotify(config)]] as Check[]) : []),
  ];
  let failed = false;
  for (const [name, check] of checks) {
    try {
      io.out(`ok    ${name.padEnd(11)} ${await check()}`);
    } catch (err) {
      failed = true;
      io.out(`FAIL  ${name.padEnd(11)} ${(err as Error).message}`);
    }
  }
  return failed ? 1 : 0;
}

/**
 * Each receiver's token file reads and its server takes a connection (TLS verified for https);
 * nothing is sent to it. Receivers are named by their origin only: a webhook URL is a secret.
 */
async function checkNotify(config: AgentConfig): Promise<string> {
  const said: string[] = [];
  for (const [i, n] of config.notify.entries()) {
    const at = `notify[${i}] (${originOf(n.url)})`;
    if (n.tokenFile) await readTokenFile(config, n.tokenFile, `/notify/${i}/tokenFile`);
    await reachReceiver(n.url).catch((err: Error) => {
      throw new Error(`${at} cannot be reached: ${err.message}`);
    });
    said.push(at);
  }
  const waiting = await pendingNotices(config.stateDir);
  return `${said.join(', ')} reachable (nothing sent)${waiting > 0 ? `; ${waiting} notification(s) waiting in ${config.stateDir}/notify.json` : ''}`;
}

/** The SOPS keys load; what is printed of them is their public half. */
async function checkSecrets(config: AgentConfig): Promise<string> {
  return `SOPS files for ${(await SecretKeys.load(config)).describe()} can be decrypted`;
}

/** docker.authFile reads and has an entry per registry (the credentials are not printed). */
async function checkRegistries(config: AgentConfig): Promise<string> {
  const auth = await RegistryAuth.load(config);
  return `logins for ${(await auth.registries()).join(', ') || 'no registry'} in ${config.docker.authFile}`;
}

/** The key files of source.verify load, and what they hold. */
async function checkTrust(config: AgentConfig): Promise<string> {
  const trust = await loadTrust(config);
  const said: string[] = [];
  if (trust?.ssh) said.push(`${trust.ssh.signers.length} SSH signer(s) in ${trust.ssh.file}`);
  if (trust?.pgp) said.push(`${trust.pgp.keys.length} OpenPGP key(s) in ${trust.pgp.file}`);
  const count = (trust?.ssh?.signers.length ?? 0) + (trust?.pgp?.keys.length ?? 0);
  if (count === 0) throw new Error(`source.verify lists no key: no head can be applied (${said.join(', ')})`);
  return `heads must be signed: ${said.join(', ')}`;
}

/** The deploy key reads, and knownHostsFile lists the server (the connection itself is the git check). */
async function checkSsh(config: AgentConfig): Promise<string> {
  const { ssh } = await readGitCredentials(config);
  const to = parseSshUrl(config.source.url, config.source.username);
  const name = hostName(to.host, to.port);
  const types = listedTypes(ssh!.knownHosts, name);
  if (types.length === 0)
    throw new Error(
      `deploy key ${ssh!.fingerprint}; ${config.source.ssh!.knownHostsFile} does not list ${name}: add its host key (ssh-keyscan${to.port === 22 ? '' : ` -p ${to.port}`} ${to.host}, checked out of band)`,
    );
  return `deploy key ${ssh!.fingerprint}; ${name} listed (${types.join(', ')}) in ${config.source.ssh!.knownHostsFile}`;
}

/** The branch, asked for with the host's credentials, in a throwaway gitdir. */
async function checkGit(config: AgentConfig, signal: AbortSignal): Promise<string> {
  const creds = await readGitCredentials(config);
  const dir = await mkdtemp(join(tmpdir(), 'steward-doctor-'));
  const remote = configRemote(config, creds, { signal });
  try {
    const repo = new GitRepo({ gitdir: join(dir, 'x.git'), url: config.source.url, ...remote });
    await repo.init();
    const head = await repo.remoteHead(config.source.branch);
    const how = creds.ssh
      ? `reachable over SSH (host key verified, deploy key accepted)`
      : `reachable${creds.token ? ' with the credentials' : ''}`;
    if (!head) throw new Error(`${how}, but branch "${config.source.branch}" does not exist`);
    return `${how}; ${config.source.branch} at ${head.slice(0, 7)}`;
  } finally {
    if (remote.transport instanceof SshTransport) remote.transport.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function checkDocker(config: AgentConfig): Promise<string> {
  const v = await createDocker(config.docker.socket).version();
  return `${config.docker.socket}: engine ${v.Version} (API ${v.ApiVersion})`;
}

async function checkSystemd(): Promise<string> {
  if (!existsSync('/run/systemd/system'))
    throw new Error('this host was not booted with systemd: Service resources cannot be applied');
  const { execFile } = await import('node:child_process');
  const out = await new Promise<string>((res, rej) =>
    execFile('systemctl', ['--version'], (e, o) => (e ? rej(e) : res(o))),
  );
  return out.split('\n')[0] ?? 'present';
}

async function checkState(config: AgentConfig): Promise<string> {
  await mkdir(config.stateDir, { recursive: true });
  await access(config.stateDir, constants.W_OK);
  return `${config.stateDir} writable`;
}

async function checkRoots(config: AgentConfig): Promise<string> {
  if (config.files.roots.length === 0) return 'none configured (File resources cannot write anywhere)';
  const notes: string[] = [];
  for (const root of config.files.roots) {
    const st = await lstat(root).catch(() => undefined);
    if (!st) notes.push(`${root} missing (created on first write)`);
    else if (st.isSymbolicLink()) throw new Error(`${root} is a symlink; Steward does not follow symlinks`);
    else if (!st.isDirectory()) throw new Error(`${root} is not a directory`);
    else {
      await access(root, constants.W_OK).catch(() => {
        throw new Error(`${root} is not writable`);
      });
      notes.push(`${root} writable`);
    }
  }
  return notes.join(', ');
}

import { join } from 'node:path';
import { readCredentials, resolveCredentialPath, type AgentConfig, type Credentials } from '../config/load.js';
import { readSshAuth, type SshAuth } from './sshauth.js';
import { Secret } from '../config/secret.js';
import { agentVersion } from '../version.js';
import { createHttpClient, type GitHttp, type HttpStats } from './http.js';
import { GitRepo } from './repo.js';
import { SshTransport } from './ssh.js';
import type { GitTransport } from './transport.js';

/** How a GitRepo reaches its server: the transport, and the headers every request carries. */
export interface GitRemote {
  http: GitHttp;
  headers: Record<string, string>;
  /** source.maxPackSize: also the largest object a pack may hold. */
  maxObjectBytes: number;
  /** Set for an SSH source (smart HTTP over `http` otherwise). One for both repos: one kept connection. */
  transport?: GitTransport;
}

export interface RemoteOptions {
  username: string;
  token?: Secret;
  ca?: string;
  timeoutMs: number;
  maxPackBytes?: number;
  stats?: HttpStats;
  signal?: AbortSignal;
}

/**
 * The one place the user agent and the credentials become request headers. The Authorization
 * header is sent up front: isomorphic-git's onAuth would cost a 401 round trip on every request.
 */
export function openRemote(opts: RemoteOptions): GitRemote {
  const headers: Record<string, string> = { 'user-agent': `git/steward-${agentVersion}` };
  if (opts.token)
    headers.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.token.reveal()}`).toString('base64')}`;
  const http = createHttpClient({
    timeoutMs: opts.timeoutMs,
    ...(opts.maxPackBytes ? { maxPackBytes: opts.maxPackBytes } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
    ...(opts.stats ? { stats: opts.stats } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { http, headers, maxObjectBytes: opts.maxPackBytes ?? 64 * 1024 * 1024 };
}

/** What a remote needs from the host: the token and CA, or the deploy key and the known host keys. */
export interface GitCredentials extends Credentials {
  ssh?: SshAuth;
}

/**
 * Reads every credential file the config names (token, CA, SSH deploy key and known_hosts), the
 * deploy key from $CREDENTIALS_DIRECTORY under systemd as the token is.
 */
export async function readGitCredentials(config: AgentConfig): Promise<GitCredentials> {
  const creds: GitCredentials = await readCredentials(config);
  const ssh = config.source.ssh;
  if (ssh) creds.ssh = await readSshAuth(config, resolveCredentialPath(ssh.keyFile), ssh.knownHostsFile);
  return creds;
}

/** The remote of a loaded config: smart HTTP, or SSH with the deploy key when source.url is SSH. */
export function configRemote(
  config: AgentConfig,
  creds: GitCredentials,
  opts: { stats?: HttpStats; signal?: AbortSignal } = {},
): GitRemote {
  const remote = openRemote({
    username: config.source.username,
    ...(creds.token ? { token: creds.token } : {}),
    ...(creds.ca ? { ca: creds.ca } : {}),
    timeoutMs: config.source.timeoutMs,
    maxPackBytes: config.source.maxPackBytes,
    ...opts,
  });
  if (!creds.ssh) return remote;
  const transport = new SshTransport({
    url: config.source.url,
    username: config.source.username,
    auth: creds.ssh,
    timeoutMs: config.source.timeoutMs,
    maxPackBytes: config.source.maxPackBytes,
    ...opts,
  });
  return { ...remote, transport };
}

/** The local gitdir the desired state is fetched into (stateDir/source.git). */
export function sourceRepo(config: AgentConfig, remote: GitRemote): GitRepo {
  return new GitRepo({ gitdir: join(config.stateDir, 'source.git'), url: config.source.url, ...remote });
}

/** The local gitdir the status branch is written from (stateDir/status.git). */
export function statusRepo(config: AgentConfig, remote: GitRemote): GitRepo {
  return new GitRepo({ gitdir: join(config.stateDir, 'status.git'), url: config.source.url, ...remote });
}

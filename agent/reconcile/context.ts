import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCredentials, type AgentConfig, type Credentials } from '../config/load.js';
import { createDocker } from '../host/docker.js';
import { collectFacts } from '../host/facts.js';
import type { Logger } from '../log.js';
import { ContainerDriver } from '../resources/container.js';
import { FileDriver } from '../resources/file.js';
import { ServiceDriver } from '../resources/service.js';
import { Systemd } from '../host/systemd.js';
import { createHttpClient, type GitHttp, type HttpStats } from '../source/http.js';
import { GitRepo } from '../source/repo.js';
import { agentVersion } from '../version.js';
import type { AgentContext } from './run.js';

export interface ContextOptions {
  /** Counts the Git requests and bytes of both repos (the bench reads it). */
  stats?: HttpStats;
  /** Aborts in-flight Git requests (SIGTERM). */
  signal?: AbortSignal;
  /** Skip the host facts (systeminformation spawns processes): validate/plan do not need them. */
  facts?: boolean;
}

/**
 * Builds what a run needs from a loaded config: credentials (read from their files now), the
 * two gitdirs under stateDir (source and status), the Docker client and the drivers.
 */
export async function createContext(
  config: AgentConfig,
  log: Logger,
  opts: ContextOptions = {},
): Promise<AgentContext> {
  const creds = await readCredentials(config);
  const remote = gitRemote(config, creds, opts);
  const docker = createDocker(config.docker.socket);
  const revision = { current: '' };
  return {
    config,
    creds,
    log,
    source: new GitRepo({ gitdir: join(config.stateDir, 'source.git'), url: config.source.url, ...remote }),
    status: statusRepo(config, remote),
    drivers: {
      Container: new ContainerDriver(docker, config.host, () => revision.current, config.docker.socket),
      File: new FileDriver(config.stateDir),
      // systemd's own test for "booted with systemd": without it, Service resources fail as unsupported.
      ...(existsSync('/run/systemd/system') ? { Service: new ServiceDriver(new Systemd(), config.stateDir) } : {}),
    },
    identity: {
      host: config.host,
      labels: config.labels,
      agentVersion,
      heartbeatSeconds: Math.max(1, Math.round(config.status.heartbeatMs / 1000)),
      facts:
        opts.facts === false ? { nodeVersion: process.versions.node, arch: process.arch } : await collectFacts(docker),
    },
    revision,
  };
}

export interface GitRemote {
  http: GitHttp;
  headers: Record<string, string>;
  /** source.maxPackSize: also the largest object a pack may hold. */
  maxObjectBytes: number;
}

/** The HTTP client and headers for every Git request of this config. */
export function gitRemote(
  config: AgentConfig,
  creds: Credentials,
  opts: { stats?: HttpStats; signal?: AbortSignal } = {},
): GitRemote {
  const headers: Record<string, string> = { 'user-agent': `git/steward-${agentVersion}` };
  // Sent up front: isomorphic-git's onAuth would cost a 401 round trip on every request.
  if (creds.token)
    headers.authorization = `Basic ${Buffer.from(`${config.source.username}:${creds.token.reveal()}`).toString('base64')}`;
  const http = createHttpClient({
    timeoutMs: config.source.timeoutMs,
    maxPackBytes: config.source.maxPackBytes,
    ...(creds.ca ? { ca: creds.ca } : {}),
    ...(opts.stats ? { stats: opts.stats } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { http, headers, maxObjectBytes: config.source.maxPackBytes };
}

/** The local gitdir the status branch is written from (stateDir/status.git). */
export function statusRepo(config: AgentConfig, remote: GitRemote): GitRepo {
  return new GitRepo({ gitdir: join(config.stateDir, 'status.git'), url: config.source.url, ...remote });
}

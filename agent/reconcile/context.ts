import { existsSync } from 'node:fs';
import { readCredentials, type AgentConfig, type Credentials } from '../config/load.js';
import { createDocker } from '../host/docker.js';
import { collectFacts } from '../host/facts.js';
import type { Logger } from '../log.js';
import { ContainerDriver } from '../resources/container.js';
import { FileDriver } from '../resources/file.js';
import { ServiceDriver } from '../resources/service.js';
import { Systemd } from '../host/systemd.js';
import type { HttpStats } from '../source/http.js';
import { configRemote, sourceRepo, statusRepo } from '../source/remote.js';
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
  const remote = configRemote(config, creds, opts);
  const docker = createDocker(config.docker.socket);
  const revision = { current: '' };
  return {
    config,
    creds,
    log,
    source: sourceRepo(config, remote),
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

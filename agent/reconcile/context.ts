import { SecretKeys } from '../config/keys.js';
import { readTokenFile, type AgentConfig } from '../config/load.js';
import { RegistryAuth } from '../config/registry.js';
import { loadFingerprint } from '../host/fingerprint.js';
import { createDocker } from '../host/docker.js';
import { collectFacts } from '../host/facts.js';
import type { Logger } from '../log.js';
import type { Drivers } from '../resources/driver.js';
import { createDrivers } from '../resources/registry.js';
import type { ReadBundle } from './choose.js';
import type { RolloutRead } from './rollout.js';
import { forbiddenPaths } from './resolve.js';
import type { HostIdentity } from './report.js';
import type { AgentState } from './state.js';
import type { HostStatus } from '../types/host-status.js';
import type { GitRepo } from '../source/repo.js';
import type { HttpStats } from '../source/http.js';
import { configRemote, readGitCredentials, sourceRepo, statusRepo, type GitCredentials } from '../source/remote.js';
import { loadTrust, type Trust } from '../source/verify.js';
import type { FleetCache } from '../status/fleet.js';
import { Notifications, type Receiver } from '../status/notify.js';
import { agentVersion } from '../version.js';

/** Everything a run needs, built once per process (and again on a config reload). */
export interface AgentContext {
  config: AgentConfig;
  creds: GitCredentials;
  log: Logger;
  source: GitRepo;
  status: GitRepo;
  drivers: Drivers;
  identity: HostIdentity;
  /** The keys a head must be signed by (source.verify); undefined when verification is off. */
  trust?: Trust;
  /** The keys that open SOPS files (secrets.*); undefined when none are configured. */
  secrets?: SecretKeys;
  /**
   * Bundles loaded by revision (see loadBundle). Per context: a config reload (other roots,
   * other keys) starts without them.
   */
  bundles?: Map<string, ReadBundle>;
  /** Kept between the runs of a daemon (absent for one-shot commands): see RunMemo. */
  memo?: RunMemo;
  /** rollout.yaml as read at the last revision asked for (rollout.ts rolloutAt). */
  rollout?: { revision: string; read: RolloutRead };
  /** The fleet's status documents while this host waits for a rollout's earlier waves (rollout.ts). */
  fleetCache?: FleetCache;
  /** Delivers the run's events to `notify` receivers in the background; absent without any. */
  notifier?: Notifications;
}

/**
 * What a daemon keeps between runs so that a run that changed nothing writes nothing to
 * stateDir: the state as the last run left it, with the stamp of the state.json it matches, and
 * what was not written because only timings changed (flushed at a stop or a config reload).
 */
export interface RunMemo {
  state?: { stamp: string; state: AgentState };
  /** state.json lags behind `state` by its recentRuns (not worth a synced write each poll). */
  stateBehind?: boolean;
  /** The newest status document, when status.json holds an older one that differs only in timings. */
  outbox?: HostStatus;
}

export interface ContextOptions {
  /** Counts the Git requests and bytes of both repos (the bench reads it). */
  stats?: HttpStats;
  /** Aborts in-flight Git requests (SIGTERM). */
  signal?: AbortSignal;
  /** Skip the host facts (and the Docker version request): validate/plan do not need them. */
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
  const creds = await readGitCredentials(config);
  const trust = await loadTrust(config);
  const secrets = config.secrets ? await SecretKeys.load(config) : undefined;
  const registry = await RegistryAuth.load(config);
  const remote = configRemote(config, creds, opts);
  const docker = createDocker(config.docker.socket);
  const notifier = await notifierOf(config, log);
  return {
    config,
    creds,
    log,
    bundles: new Map(),
    source: sourceRepo(config, remote),
    status: statusRepo(config, remote),
    ...(trust ? { trust } : {}),
    ...(secrets ? { secrets } : {}),
    ...(notifier ? { notifier } : {}),
    drivers: createDrivers({
      host: config.host,
      stateDir: config.stateDir,
      docker,
      dockerSocket: config.docker.socket,
      filePaths: { roots: config.files.roots, forbidden: forbiddenPaths(config) },
      fingerprint: await loadFingerprint(config.stateDir),
      registry,
    }),
    identity: {
      host: config.host,
      labels: config.labels,
      agentVersion,
      heartbeatSeconds: Math.max(1, Math.round(config.status.heartbeatMs / 1000)),
      facts:
        opts.facts === false ? { nodeVersion: process.versions.node, arch: process.arch } : await collectFacts(docker),
    },
  };
}

/** The notify receivers with their tokens read (a token file that cannot be read is a config error). */
async function notifierOf(config: AgentConfig, log: Logger): Promise<Notifications | undefined> {
  if (config.notify.length === 0) return undefined;
  const receivers: Receiver[] = [];
  for (const [i, n] of config.notify.entries())
    receivers.push(
      n.tokenFile ? { ...n, token: await readTokenFile(config, n.tokenFile, `/notify/${i}/tokenFile`) } : n,
    );
  return new Notifications(receivers, log.child({ component: 'notify' }));
}

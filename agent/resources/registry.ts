import { existsSync } from 'node:fs';
import type { Docker } from '../host/docker.js';
import type { RegistryAuth } from '../config/registry.js';
import type { Fingerprint } from '../host/fingerprint.js';
import { Systemd } from '../host/systemd.js';
import { ContainerDriver } from './container.js';
import type { Drivers } from './driver.js';
import { FileDriver } from './file.js';
import { ServiceDriver } from './service.js';

/** What the drivers need of the host, built once per context. */
export interface HostDeps {
  host: string;
  stateDir: string;
  docker: Docker;
  dockerSocket: string;
  /** files.roots, and Steward's own paths that no File may write. */
  filePaths: { roots: readonly string[]; forbidden: readonly string[] };
  /** Keyed fingerprints of content and env (the key is in stateDir). */
  fingerprint: Fingerprint;
  /** docker.authFile, for pulls. */
  registry?: RegistryAuth;
}

/**
 * The registry of kinds, host side: the driver of each kind this host can manage, one line per
 * kind (its manifest rules are in manifest/kinds.ts). A kind missing here fails its resources
 * with E_KIND_UNSUPPORTED and leaves the rest of the bundle alone.
 */
export function createDrivers(h: HostDeps): Drivers {
  return {
    Container: new ContainerDriver(h.docker, h.host, h.dockerSocket, h.fingerprint, h.registry),
    File: new FileDriver(h.stateDir, h.filePaths, h.fingerprint),
    // systemd's own test for "booted with systemd".
    ...(existsSync('/run/systemd/system') ? { Service: new ServiceDriver(new Systemd(), h.stateDir) } : {}),
  };
}

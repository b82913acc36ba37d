/* Generated from schemas/container.schema.json by schemas/gen-types.mjs. Do not edit. */

/**
 * Items: A resource id, Kind/name, e.g. Container/web (Kind is Container, File or Service).
 */
export type ResourceIds = string[];
/**
 * A health probe: exactly one of http, tcp or exec. A run that changed the resource waits up to deadline for it to pass.
 */
export type Probe = {
  [k: string]: unknown | undefined;
} & {
  http?: {
    /**
     * URL to GET; healthy when it answers with the expected status.
     */
    url: string;
    status?: number;
  };
  tcp?: {
    host?: string;
    port: number;
  };
  exec?: {
    /**
     * Run inside the container (Container) or on the host (Service); healthy when it exits 0.
     *
     * @minItems 1
     */
    command: [string, ...string[]];
  };
  /**
   * A duration such as 500ms, 30s, 5m, 1h30m.
   */
  interval?: string;
  /**
   * A duration such as 500ms, 30s, 5m, 1h30m.
   */
  timeout?: string;
  /**
   * A duration such as 500ms, 30s, 5m, 1h30m.
   */
  deadline?: string;
};

/**
 * A Docker container that Steward creates, keeps running and recreates when its spec changes.
 */
export interface ContainerResource {
  apiVersion: "steward/v1";
  kind: "Container";
  metadata: Metadata;
  spec: ContainerSpec;
}
export interface Metadata {
  /**
   * Resource name: lower-case letters, digits, '-' and '.', starting with a letter or digit.
   */
  name: string;
  labels?: {
    [k: string]: string | undefined;
  };
}
export interface ContainerSpec {
  /**
   * Image reference without spaces, e.g. nginx:1.27 or local/busybox:1.
   */
  image: string;
  /**
   * Overrides the image's CMD.
   */
  command?: string[];
  /**
   * Overrides the image's ENTRYPOINT.
   */
  entrypoint?: string[];
  /**
   * Environment variables; values must be strings (quote numbers in YAML).
   */
  env?: {
    [k: string]: string | undefined;
  };
  /**
   * Files of the repository whose names and values are added to env: a dotenv, YAML or JSON map, plain or SOPS-encrypted (decrypt: sops). A name set twice is a validation error.
   *
   * @maxItems 64
   */
  envFrom?: {
    /**
     * A file in the repository, relative to the manifest's file; its format by its name (.env, .yaml/.yml, .json).
     */
    source: string;
    /**
     * The file is SOPS-encrypted; it is decrypted on the host.
     */
    decrypt?: "sops";
  }[];
  /**
   * Items: [hostIp:][hostPort:]containerPort[/proto], e.g. "8080:80" or "127.0.0.1:53:53/udp".
   */
  ports?: string[];
  /**
   * Items: hostPath:containerPath[:ro|rw] or volumeName:containerPath[:ro|rw].
   */
  volumes?: string[];
  restart?: "no" | "always" | "unless-stopped" | "on-failure";
  user?: string;
  /**
   * An absolute path inside the container.
   */
  workingDir?: string;
  /**
   * Container labels; the steward.* prefix is reserved.
   */
  labels?: {
    [k: string]: string | undefined;
  };
  healthcheck?: {
    /**
     * A command (exec form array, or a string run by /bin/sh -c).
     */
    test: [string, ...string[]] | string;
    /**
     * A duration such as 500ms, 30s, 5m, 1h30m.
     */
    interval?: string;
    /**
     * A duration such as 500ms, 30s, 5m, 1h30m.
     */
    timeout?: string;
    retries?: number;
    /**
     * A duration such as 500ms, 30s, 5m, 1h30m.
     */
    startPeriod?: string;
  };
  pull?: "IfNotPresent" | "Always";
  /**
   * Memory limit, e.g. 256m, 1g.
   */
  memory?: string;
  cpus?: number;
  networkMode?: string;
  dependsOn?: ResourceIds;
  restartOn?: ResourceIds;
  probe?: Probe;
}

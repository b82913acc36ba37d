/* Generated from schemas/service.schema.json by schemas/gen-types.mjs. Do not edit. */

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
   * Deadline of one attempt.
   */
  timeout?: string;
  /**
   * How long a run waits for the resource to become healthy after changing it (default: the agent's health.timeout).
   */
  deadline?: string;
};

/**
 * A systemd unit: its unit file (optional) and whether it is enabled and running.
 */
export interface ServiceResource {
  apiVersion: "steward/v1";
  kind: "Service";
  metadata: Metadata;
  spec: ServiceSpec;
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
export interface ServiceSpec {
  /**
   * A systemd unit name with its type, e.g. kiosk.service or backup.timer.
   */
  unit: string;
  content?: string;
  source?: string;
  enabled?: boolean;
  state?: "running" | "stopped";
  dependsOn?: ResourceIds;
  restartOn?: ResourceIds;
  probe?: Probe;
}

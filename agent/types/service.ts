/* Generated from schemas/service.schema.json by schemas/gen-types.mjs. Do not edit. */

/**
 * Items: A resource id, Kind/name, e.g. Container/web (Kind is Container, File or Service).
 */
export type ResourceIds = string[];

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
}

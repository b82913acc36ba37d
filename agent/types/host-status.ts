/* Generated from schemas/host-status.schema.json by schemas/gen-types.mjs. Do not edit. */

export type Revision = string | null;

/**
 * One host's status document, hosts/<host>/status.json on the status branch.
 */
export interface HostStatus {
  host: string;
  labels: {
    [k: string]: string | undefined;
  };
  agentVersion: string;
  updatedAt: string;
  heartbeatSeconds: number;
  desiredRevision: Revision;
  appliedRevision: Revision;
  lastGoodRevision: Revision;
  /**
   * Who signed the applied revision (source.verify): the key that verified it.
   */
  signer?: {
    revision: string;
    format: "ssh" | "openpgp";
    /**
     * SSH: SHA256:… as ssh-keygen -l prints it; OpenPGP: the primary key's fingerprint.
     */
    fingerprint: string;
    /**
     * SSH: the allowed_signers principal; OpenPGP: the key's primary user ID.
     */
    principal: string;
  };
  failedRevisions?: string[];
  phase: "Converged" | "Progressing" | "Degraded" | "Failed" | "Invalid" | "Offline" | "Suspended";
  conditions: Condition[];
  resources: {
    [k: string]: Resource | undefined;
  };
  lastRun: Run;
  recentRuns?: Run[];
  errors: Error[];
  facts: Facts;
  warnings?: string[];
  rollback?: {
    from: string;
    to: string;
    at: string;
    reason: string;
  };
}
export interface Condition {
  type: "Ready" | "SourceReady" | "Valid" | "Healthy" | "Reported";
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
}
export interface Resource {
  action: "none" | "create" | "update" | "recreate" | "start" | "restart" | "delete";
  status: "Ready" | "Failed" | "Skipped" | "Pruned";
  health: "Healthy" | "Unhealthy" | "Unknown";
  message: string;
  driftCorrected: boolean;
  code?: string;
}
export interface Run {
  startedAt: string;
  durationMs: number;
  revision: Revision;
  result: "Converged" | "Progressing" | "Degraded" | "Failed" | "Invalid" | "Offline" | "Suspended";
  counts: {
    resources: number;
    changed: number;
    failed: number;
    skipped: number;
    pruned: number;
    drift: number;
  };
}
export interface Error {
  code: string;
  message: string;
  /**
   * What fixes it: transient (the next run may succeed on its own; the agent retries sooner) or stalled (a new commit, a config change or a human is needed).
   */
  retry?: "transient" | "stalled";
  resource?: string;
  file?: string;
  line?: number;
  pointer?: string;
}
export interface Facts {
  os?: string;
  kernel?: string;
  arch?: string;
  cpu?: string;
  cpus?: number;
  memoryBytes?: number;
  dockerVersion?: string;
  nodeVersion?: string;
}

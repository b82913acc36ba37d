/* Generated from schemas/agent-config.schema.json by schemas/gen-types.mjs. Do not edit. */

/**
 * The agent config file, /etc/steward/agent.yaml.
 */
export interface AgentConfigFile {
  /**
   * This host's name in the fleet: letters, digits, '.', '_' and '-' (default: the OS hostname).
   */
  host?: string;
  labels?: {
    /**
     * Label value: letters, digits, '.', '_' and '-', at most 63.
     */
    [k: string]: string | undefined;
  };
  source: {
    /**
     * Smart HTTP(S) URL of the fleet repository (http:// or https://; ssh and git:// are not supported).
     */
    url: string;
    /**
     * Branch to follow.
     */
    branch?: string;
    /**
     * @minItems 1
     */
    paths?: [string, ...string[]];
    auth?: {
      username?: string;
      /**
       * Absolute path of the file holding the token or password; secrets are only read from files.
       */
      tokenFile: string;
    };
    /**
     * Absolute path of a PEM CA bundle to trust for HTTPS.
     */
    caFile?: string;
    /**
     * Poll interval, 100ms to 24h.
     */
    interval?: string;
    /**
     * A cron expression; replaces interval.
     */
    schedule?: string;
    /**
     * Random delay added to each poll, up to 24h.
     */
    jitter?: string;
    /**
     * Deadline of one Git HTTP request, 100ms to 1h (a pack download gets 10x).
     */
    timeout?: string;
    /**
     * Apply a head that is not a descendant of the applied revision (a force-push).
     */
    allowHistoryRewrite?: boolean;
    /**
     * The largest pack a fetch may download (e.g. 64MiB); a server that sends more is cut off with E_GIT_TOO_LARGE. A fetch holds about 4 times the pack in memory.
     */
    maxPackSize?: string;
  };
  status?: {
    /**
     * Branch the status documents are committed to.
     */
    branch?: string;
    /**
     * A status commit at least this often, 1s to 24h.
     */
    heartbeat?: string;
    enabled?: boolean;
    /**
     * Commits the status branch keeps; the host that passes it squashes the branch into one commit.
     */
    historyLimit?: number;
  };
  /**
   * Absolute path of the agent state directory.
   */
  stateDir?: string;
  files?: {
    roots?: string[];
  };
  docker?: {
    socket?: string;
  };
  prune?: {
    /**
     * Let a bundle with no resources remove everything Steward owns.
     */
    allowEmpty?: boolean;
  };
  rollback?: "auto" | "off";
  log?: {
    level?: "trace" | "debug" | "info" | "warn" | "error";
  };
  health?: {
    /**
     * How long a run waits for what it changed to become healthy.
     */
    timeout?: string;
  };
  metrics?: {
    /**
     * host:port for Prometheus metrics at /metrics, e.g. 127.0.0.1:9464 (keep it on localhost).
     */
    listen: string;
  };
}

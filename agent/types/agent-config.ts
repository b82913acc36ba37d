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
     * URL of the fleet repository: smart HTTP(S) (https://host/path.git), or SSH (ssh://user@host[:port]/path.git, user@host:path.git) with source.auth.sshKeyFile and knownHostsFile. Over SSH, Git protocol v2 is used where the server passes GIT_PROTOCOL on, v0 otherwise.
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
    /**
     * Credentials, only by file: tokenFile (HTTP(S)), or sshKeyFile and knownHostsFile (SSH).
     */
    auth?: {
      username?: string;
      /**
       * Absolute path of the file holding the token or password; secrets are only read from files.
       */
      tokenFile?: string;
      /**
       * Absolute path of the OpenSSH private key (deploy key) for an SSH source.url: ed25519, ECDSA or RSA, without a passphrase.
       */
      sshKeyFile?: string;
      /**
       * Absolute path of an OpenSSH known_hosts file listing the server's host key (hashed entries allowed). Required for SSH: an unknown host key is refused, never trusted on first use.
       */
      knownHostsFile?: string;
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
     * A change window: new revisions are applied only while it is open (it opens at each time of schedule and stays open for duration). Drift correction and rollback always run; a host that has applied nothing yet applies its first revision at once.
     */
    window?: {
      /**
       * A cron expression: when the window opens, e.g. "0 2 * * *" (02:00 every day) or "0 22 * * 1-5".
       */
      schedule: string;
      /**
       * How long the window stays open once it opened, 1m to 168h (e.g. 2h).
       */
      duration: string;
      /**
       * IANA time zone of schedule, e.g. Europe/Berlin (default: the host's own zone).
       */
      timezone?: string;
    };
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
    /**
     * Signed commits: when set, the head commit must be signed by a key listed here, or it is not applied.
     */
    verify?: {
      /**
       * Absolute path of an allowed_signers file (ssh-keygen(1) format) listing the SSH keys that may sign (gpg.format=ssh).
       */
      allowedSignersFile?: string;
      /**
       * Absolute path of a file of armored OpenPGP public keys that may sign (gpg --armor --export).
       */
      gpgKeysFile?: string;
    };
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
     * Reports a host's status branch keeps; the report that passes it squashes the branch into one commit (about 2 days at a 15-minute heartbeat).
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
    /**
     * Registry credentials for pulls, in Docker's config.json format (auths: auth, or username and password, or identitytoken). A relative name is read from $CREDENTIALS_DIRECTORY under systemd.
     */
    authFile?: string;
  };
  /**
   * Keys that open SOPS files (decrypt: sops). They stay on this host.
   */
  secrets?: {
    /**
     * age identities, one AGE-SECRET-KEY-1... per line as age-keygen writes them (several allowed, # comments).
     */
    ageKeyFile?: string;
    /**
     * An armored OpenPGP private key (or several), without a passphrase.
     */
    pgpKeyFile?: string;
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
  /**
   * Where to send (at most 10 receivers) a notification (an outbound HTTP POST) on an event: a phase change, a rollback, a refused revision. Sent after the run, retried with backoff, one per change; never blocks or fails a run.
   */
  notify?: {
    /**
     * The receiver: any URL that takes a POST (an ntfy topic URL, a Slack incoming webhook). Only its origin is ever logged: a webhook URL is a secret.
     */
    url: string;
    /**
     * json: a JSON document (host, event, phase, revision, reason, message, failed); ntfy: a text message with Title, Tags and Priority headers; slack: {"text": ...} for an incoming webhook.
     */
    format?: "json" | "ntfy" | "slack";
    /**
     * The events sent (default: all).
     *
     * @minItems 1
     */
    events?: [
      "phaseChanged" | "rolledBack" | "revisionRefused" | "rolloutHalted",
      ...("phaseChanged" | "rolledBack" | "revisionRefused" | "rolloutHalted")[]
    ];
    /**
     * Absolute path of a file holding a token, sent as Authorization: Bearer (read from $CREDENTIALS_DIRECTORY under systemd like source.auth.tokenFile).
     */
    tokenFile?: string;
  }[];
  metrics?: {
    /**
     * host:port for Prometheus metrics at /metrics, e.g. 127.0.0.1:9464 (keep it on localhost).
     */
    listen: string;
  };
}

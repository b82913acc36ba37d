import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import cron from 'node-cron';
import { readFile } from '../files.js';
import { StewardError, StewardErrors, type ErrorDetail } from '../errors.js';
import { parseDocuments } from '../manifest/parse.js';
import { decodeManifest } from '../manifest/text.js';
import { checkSchema } from '../manifest/schema.js';
import type { AgentConfigFile } from '../types/agent-config.js';
import { parseDuration, parseSize } from '../duration.js';
import { hostTimezone, timezoneProblem, type ChangeWindow } from './window.js';
import { Secret } from './secret.js';

export const DEFAULT_CONFIG_PATH = '/etc/steward/agent.yaml';

/** The agent config with every default filled in and every variable expanded. */
export interface AgentConfig {
  /** The file it was read from. */
  file: string;
  host: string;
  labels: Record<string, string>;
  source: {
    url: string;
    branch: string;
    /** Repository paths, expanded and normalized ("" is the repository root). */
    paths: string[];
    username: string;
    tokenFile?: string;
    /**
     * A password written in the URL (https://user:pw@host/...): taken out of `url`, used as the
     * token when no tokenFile is set, never stored or printed. tokenFile is the way to give one.
     */
    urlPassword?: Secret;
    caFile?: string;
    /** For an SSH url: the deploy key and the host keys it may talk to (`source.auth`). */
    ssh?: { keyFile: string; knownHostsFile: string };
    /** Signed commits (`source.verify`): the key files; off when absent. */
    verify?: { allowedSignersFile?: string; gpgKeysFile?: string };
    intervalMs: number;
    schedule?: string;
    jitterMs: number;
    /** `source.window`: when new revisions may be applied; always, when absent. */
    window?: ChangeWindow;
    timeoutMs: number;
    /** The largest pack one fetch may bring. */
    maxPackBytes: number;
    allowHistoryRewrite: boolean;
  };
  status: { branch: string; heartbeatMs: number; enabled: boolean; historyLimit: number };
  stateDir: string;
  files: { roots: string[] };
  /** Registry credentials for pulls: a file in Docker's config.json format. */
  docker: { socket: string; authFile?: string };
  /** The keys that open SOPS files (`decrypt: sops`); read by config/keys.ts when a file needs them. */
  secrets?: { ageKeyFile?: string; pgpKeyFile?: string };
  prune: { allowEmpty: boolean };
  rollback: 'auto' | 'off';
  health: { timeoutMs: number };
  metrics?: { listen: string };
  /** `notify`: where events are POSTed (status/notify.ts); none when absent. */
  notify: NotifyTarget[];
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
}

/** Credentials read from the files the config names; never part of AgentConfig, never logged. */
export interface Credentials {
  token?: Secret;
  ca?: string;
}

/**
 * Reads, validates and resolves the agent config. Every problem throws a StewardErrors whose
 * entries name the file, the line and the field; nothing is half-loaded.
 */
export async function loadConfig(file: string, opts: { hostname?: string } = {}): Promise<AgentConfig> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new StewardErrors([
      new StewardError('E_CONFIG_READ', `cannot read the config file: ${reason}`, { file, cause: err }),
    ]);
  }
  const decoded = decodeManifest(file, bytes);
  if ('error' in decoded)
    throw new StewardErrors([
      new StewardError('E_CONFIG_PARSE', decoded.error.message, {
        file,
        ...(decoded.error.detail.line ? { line: decoded.error.detail.line } : {}),
      }),
    ]);
  const text = decoded.text;
  // Absolute from here on: a relative --config must not be another spelling of a protected
  // path, and SIGHUP reloads the same file whatever the working directory is by then.
  return parseConfig(text, posix.resolve(file), opts);
}

/** Like loadConfig, from text already read (used by `steward enroll` before it writes). */
export function parseConfig(text: string, file: string, opts: { hostname?: string } = {}): AgentConfig {
  const doc = readConfigDocument(text, file);
  const raw = doc.value as AgentConfigFile;
  const errors: StewardError[] = [];
  const where = (pointer: string) => ({ file, line: doc.lineOf(pointer), pointer });
  const host = raw.host ?? opts.hostname ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(host))
    errors.push(
      new StewardError(
        'E_CONFIG_INVALID',
        `the OS hostname ${JSON.stringify(host)} is not a valid host name; set "host"`,
        { file, line: doc.line, pointer: '/host' },
      ),
    );
  // The host's status branch is <status.branch>-by-host/<host>: the name must make a Git ref.
  if (/\.\.|\.lock$|\.$/.test(host))
    errors.push(
      new StewardError(
        'E_CONFIG_INVALID',
        `host ${JSON.stringify(host)} cannot name a Git branch (no "..", no trailing "." or ".lock"); set "host"`,
        { file, line: doc.line, pointer: '/host' },
      ),
    );
  const labels = Object.fromEntries(
    Object.entries(raw.labels ?? {}).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const paths = (raw.source.paths ?? ['hosts/${host}']).map((p, i) => {
    try {
      return normalizeRepoPath(expand(p, host, labels));
    } catch (err) {
      errors.push(new StewardError('E_CONFIG_INVALID', (err as Error).message, where(`/source/paths/${i}`)));
      return '';
    }
  });
  errors.push(
    ...cronProblems(raw.source.schedule, where('/source/schedule')),
    ...authProblems(raw.source, where),
    ...windowProblems(raw.source, where),
    ...((raw.notify?.length ?? 0) > MAX_RECEIVERS
      ? [new StewardError('E_CONFIG_INVALID', `at most ${MAX_RECEIVERS} receivers`, where('/notify'))]
      : []),
  );
  if (errors.length > 0) throw new StewardErrors(errors);
  return toAgentConfig(raw, { file, host, labels, paths });
}

/** A cron expression node-cron cannot read, as the error naming its field. */
function cronProblems(expression: string | undefined, at: ErrorDetail): StewardError[] {
  if (expression === undefined) return [];
  const check = cron.validateDetailed(expression);
  if (check.valid) return [];
  const why = check.errors.map((e) => e.message).join('; ');
  return [new StewardError('E_CONFIG_INVALID', `invalid cron expression: ${why}`, at)];
}

/** source.window: a cron expression node-cron reads, and a zone this runtime knows. */
function windowProblems(source: AgentConfigFile['source'], where: (p: string) => ErrorDetail): StewardError[] {
  const w = source.window;
  if (!w) return [];
  const out = cronProblems(w.schedule, where('/source/window/schedule'));
  const zone = w.timezone === undefined ? undefined : timezoneProblem(w.timezone);
  if (zone) out.push(new StewardError('E_CONFIG_INVALID', zone, where('/source/window/timezone')));
  return out;
}

/** ssh:// and user@host:path URLs are SSH; everything else the schema lets through is HTTP(S). */
export const isSshUrl = (url: string) => !/^https?:\/\//.test(url);

/** source.auth must fit the URL: a token for HTTP(S), a key and the known host keys for SSH. */
function authProblems(
  source: AgentConfigFile['source'],
  where: (pointer: string) => { file: string; line: number; pointer: string },
): StewardError[] {
  const auth = source.auth ?? {};
  const problem = (pointer: string, message: string) => new StewardError('E_CONFIG_INVALID', message, where(pointer));
  if (!isSshUrl(source.url)) {
    const extra = (['sshKeyFile', 'knownHostsFile'] as const).filter((k) => auth[k] !== undefined);
    return [
      ...extra.map((k) => problem(`/source/auth/${k}`, `${k} is for an SSH url; ${source.url} is HTTP(S)`)),
      ...(source.auth && !auth.tokenFile ? [problem('/source/auth', 'an HTTP(S) source.auth needs tokenFile')] : []),
    ];
  }
  const problems: StewardError[] = [];
  if (auth.tokenFile !== undefined)
    problems.push(
      problem('/source/auth/tokenFile', 'tokenFile is for HTTP(S); an SSH url authenticates with sshKeyFile'),
    );
  if (source.caFile !== undefined)
    problems.push(problem('/source/caFile', 'caFile is for HTTPS; SSH checks knownHostsFile'));
  for (const k of ['sshKeyFile', 'knownHostsFile'] as const)
    if (!auth[k])
      problems.push(
        problem(
          source.auth ? '/source/auth' : '/source',
          k === 'knownHostsFile'
            ? "an SSH url needs source.auth.knownHostsFile: the server's host key must be listed (never trusted on first use)"
            : 'an SSH url needs source.auth.sshKeyFile (the deploy key)',
        ),
      );
  return problems;
}

/** The one document of a config file, parsed and checked against its schema; throws every problem. */
function readConfigDocument(text: string, file: string) {
  // `paths: [hosts/${host}]` is what users write (and what the docs show), but YAML reads an
  // unquoted { inside [ ] as a mapping. ${name} is swapped for the same-length $(name) before
  // parsing, so lines and columns stay true, and swapped back in the values.
  const { docs, failures } = parseDocuments(text.replace(/\$\{([A-Za-z0-9._-]+)\}/g, '$$($1)'), false);
  for (const d of docs) d.value = restoreVariables(d.value);
  if (failures.length > 0)
    throw new StewardErrors(failures.map((f) => new StewardError('E_CONFIG_PARSE', f.message, { file, line: f.line })));
  const doc = docs[0];
  if (!doc)
    throw new StewardErrors([new StewardError('E_CONFIG_INVALID', 'the config file is empty', { file, line: 1 })]);
  const problems = checkSchema('agent-config', doc.value);
  if (problems.length > 0)
    throw new StewardErrors(
      problems.map(
        (p) =>
          new StewardError('E_CONFIG_INVALID', p.message, {
            file,
            line: doc.lineOf(p.pointer, p.key),
            pointer: p.key ? `${p.pointer}/${p.key}` : p.pointer || '/',
          }),
      ),
    );
  return doc;
}

/** Receivers in `notify`: each run's notices go to every one of them. */
const MAX_RECEIVERS = 10;

/** What `notify` can be told about (README "Notifications"). */
export const NOTIFY_EVENTS = ['phaseChanged', 'rolledBack', 'revisionRefused', 'rolloutHalted'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export interface NotifyTarget {
  url: string;
  format: 'json' | 'ntfy' | 'slack';
  events: NotifyEvent[];
  tokenFile?: string;
}

/** The checked file with every default filled in. */
function toAgentConfig(
  raw: AgentConfigFile,
  known: Pick<AgentConfig, 'file' | 'host' | 'labels'> & { paths: string[] },
): AgentConfig {
  return {
    file: known.file,
    host: known.host,
    labels: known.labels,
    source: sourceConfig(raw.source, known.paths),
    status: {
      branch: raw.status?.branch ?? 'steward-status',
      heartbeatMs: parseDuration(raw.status?.heartbeat ?? '15m'),
      enabled: raw.status?.enabled ?? true,
      historyLimit: raw.status?.historyLimit ?? 200,
    },
    stateDir: raw.stateDir ?? '/var/lib/steward',
    files: { roots: (raw.files?.roots ?? []).map((r) => posix.normalize(r).replace(/(.)\/$/, '$1')) },
    docker: {
      socket: raw.docker?.socket ?? '/var/run/docker.sock',
      ...(raw.docker?.authFile ? { authFile: raw.docker.authFile } : {}),
    },
    ...(raw.secrets ? { secrets: { ...raw.secrets } } : {}),
    prune: { allowEmpty: raw.prune?.allowEmpty ?? false },
    rollback: raw.rollback ?? 'off',
    health: { timeoutMs: parseDuration(raw.health?.timeout ?? '60s') },
    ...(raw.metrics ? { metrics: { listen: raw.metrics.listen } } : {}),
    notify: (raw.notify ?? []).map((n) => ({
      url: n.url,
      format: n.format ?? 'json',
      events: n.events ?? [...NOTIFY_EVENTS],
      ...(n.tokenFile ? { tokenFile: n.tokenFile } : {}),
    })),
    log: { level: raw.log?.level ?? 'info' },
  };
}

/** `source` with its defaults; a password in the URL is taken out of it. */
function sourceConfig(s: AgentConfigFile['source'], paths: string[]): AgentConfig['source'] {
  const url = isSshUrl(s.url) ? { url: s.url } : splitUrlCredentials(s.url);
  const w = s.window;
  return {
    url: url.url.replace(/\/+$/, ''),
    branch: s.branch ?? 'main',
    paths: [...new Set(paths)],
    username: s.auth?.username ?? url.username ?? 'steward',
    ...(url.password ? { urlPassword: url.password } : {}),
    ...(s.auth?.tokenFile ? { tokenFile: s.auth.tokenFile } : {}),
    ...(s.caFile ? { caFile: s.caFile } : {}),
    ...(s.auth?.sshKeyFile && s.auth.knownHostsFile
      ? { ssh: { keyFile: s.auth.sshKeyFile, knownHostsFile: s.auth.knownHostsFile } }
      : {}),
    ...(s.verify ? { verify: { ...s.verify } } : {}),
    intervalMs: parseDuration(s.interval ?? '60s'),
    ...(s.schedule ? { schedule: s.schedule } : {}),
    jitterMs: parseDuration(s.jitter ?? '0s'),
    ...(w
      ? {
          window: {
            schedule: w.schedule,
            durationMs: parseDuration(w.duration),
            timezone: w.timezone ?? hostTimezone(),
          },
        }
      : {}),
    timeoutMs: parseDuration(s.timeout ?? '30s'),
    maxPackBytes: parseSize(s.maxPackSize ?? '64MiB'),
    allowHistoryRewrite: s.allowHistoryRewrite ?? false,
  };
}

/** Takes user and password out of a URL: the URL kept (in gitdirs, logs, status) has neither. */
function splitUrlCredentials(text: string): { url: string; username?: string; password?: Secret } {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { url: text };
  }
  if (!u.username && !u.password) return { url: text };
  // A malformed %-escape is taken as written (decodeURIComponent would throw).
  const decode = (x: string) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x;
    }
  };
  const username = u.username ? decode(u.username) : undefined;
  const password = u.password ? new Secret(decode(u.password)) : undefined;
  u.username = '';
  u.password = '';
  return { url: u.toString(), ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

function restoreVariables(v: unknown): unknown {
  if (typeof v === 'string') return v.replace(/\$\(([A-Za-z0-9._-]+)\)/g, '$${$1}');
  if (Array.isArray(v)) return v.map(restoreVariables);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, restoreVariables(x)]));
  return v;
}

/** Expands ${host} and ${labels.KEY}; an unknown variable is an error, never an empty string. */
export function expand(text: string, host: string, labels: Record<string, string>): string {
  return text.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    if (name === 'host') return host;
    const m = /^labels\.(.+)$/.exec(name);
    if (m && labels[m[1]!] !== undefined) return labels[m[1]!]!;
    if (m) throw new Error(`\${${name}}: the host has no label "${m[1]}"`);
    throw new Error(`unknown variable \${${name}}; use \${host} or \${labels.KEY}`);
  });
}

/** "./hosts//a/" -> "hosts/a"; rejects absolute paths and `..` so a path never leaves the repo. */
export function normalizeRepoPath(p: string): string {
  if (p.startsWith('/')) throw new Error(`${JSON.stringify(p)} must be relative to the repository root`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new Error(`${JSON.stringify(p)} must not contain ".."`);
  return parts.join('/');
}

/**
 * Reads the token and CA files the config names. A missing or empty token file is an error. The
 * SSH deploy key is read by the source layer (source/remote.ts readGitCredentials).
 */
export async function readCredentials(config: AgentConfig): Promise<Credentials> {
  const creds: Credentials = {};
  if (config.source.tokenFile) {
    creds.token = await readTokenFile(config, config.source.tokenFile, '/source/auth/tokenFile');
  } else if (config.source.urlPassword) creds.token = config.source.urlPassword;
  if (config.source.caFile) {
    try {
      creds.ca = await readFile(config.source.caFile, 'utf8');
    } catch (err) {
      throw new StewardError(
        'E_CONFIG_READ',
        `cannot read the CA file ${config.source.caFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        {
          file: config.file,
          pointer: '/source/caFile',
          cause: err,
        },
      );
    }
  }
  return creds;
}

/** A token file (under systemd, from $CREDENTIALS_DIRECTORY): its trimmed text, or an error naming the field. */
export async function readTokenFile(config: AgentConfig, path: string, pointer: string): Promise<Secret> {
  const file = resolveCredentialPath(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StewardError('E_CONFIG_TOKEN', `cannot read the token file ${file}: ${why}`, {
      file: config.file,
      pointer,
      cause: err,
    });
  }
  const token = text.trim();
  if (token === '')
    throw new StewardError('E_CONFIG_TOKEN', `the token file ${file} is empty`, { file: config.file, pointer });
  return new Secret(token);
}

/**
 * systemd's LoadCredential= puts credentials in $CREDENTIALS_DIRECTORY; a credential there with
 * the token file's base name wins over the path itself (which the hardened unit may hide).
 */
export function resolveCredentialPath(file: string): string {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  const candidate = dir ? `${dir}/${posix.basename(file)}` : undefined;
  return candidate && existsSync(candidate) ? candidate : file;
}

import { readFile, stat } from '../files.js';
import { StewardError } from '../errors.js';
import { resolveCredentialPath, type AgentConfig } from './load.js';
import { Secret } from './secret.js';

/**
 * Registry credentials for pulls (`docker.authFile`), in Docker's config.json format:
 * `{"auths": {"registry.example:5000": {"auth": base64("user:password")}}}`, or `username` and
 * `password`, or `identitytoken`. Values are Secrets: they print as [redacted].
 */
export interface RegistryLogin {
  serveraddress: string;
  username?: string;
  password?: Secret;
  identitytoken?: Secret;
}

const HUB = 'docker.io';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** The registry an image reference pulls from: its first part when that names a host, else Docker Hub. */
export function registryOf(image: string): string {
  const first = image.split('/')[0]!;
  const isHost = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return isHost ? normalizeRegistry(first) : HUB;
}

/** "https://index.docker.io/v1/" and "registry-1.docker.io" are Docker Hub; a scheme and path are dropped. */
export function normalizeRegistry(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return HUB_ALIASES.has(host) ? HUB : host;
}

/**
 * docker.authFile, read when a pull needs it and read again whenever the file changes (size or
 * mtime), so a file that a File resource writes (a SOPS-encrypted config.json in the repository)
 * is used from the next pull on. A missing file means no logins; one that is not Docker's
 * format is E_REGISTRY_AUTH naming it.
 */
export class RegistryAuth {
  #seen = '';
  #logins: ReadonlyMap<string, RegistryLogin> = new Map();

  private constructor(
    private readonly file: string | undefined,
    private readonly configFile: string,
  ) {}

  static readonly none = new RegistryAuth(undefined, '');

  /** Checks the file now when it exists (a bad one stops the agent at start); a missing one is read later. */
  static async load(
    config: Pick<AgentConfig, 'file' | 'docker'>,
    opts: { mustExist?: boolean } = {},
  ): Promise<RegistryAuth> {
    if (!config.docker.authFile) return RegistryAuth.none;
    const auth = new RegistryAuth(config.docker.authFile, config.file);
    await auth.#refresh(opts.mustExist ?? false);
    return auth;
  }

  /** The login for an image's registry, if the file has one. */
  async forImage(image: string): Promise<RegistryLogin | undefined> {
    await this.#refresh(false);
    return this.#logins.get(registryOf(image));
  }

  async registries(): Promise<string[]> {
    await this.#refresh(true);
    return [...this.#logins.keys()];
  }

  async #refresh(mustExist: boolean): Promise<void> {
    if (!this.file) return;
    const file = resolveCredentialPath(this.file);
    const fail = (reason: string) =>
      new StewardError('E_REGISTRY_AUTH', `docker.authFile ${file}: ${reason}`, {
        file: this.configFile,
        pointer: '/docker/authFile',
      });
    const st = await stat(file).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      if (st.code === 'ENOENT' && !mustExist) {
        this.#logins = new Map();
        this.#seen = '';
        return;
      }
      throw fail(`cannot be read (${st.code})`);
    }
    const seen = `${file}:${st.size}:${st.mtimeMs}`;
    if (seen === this.#seen) return;
    if (st.size > 1024 * 1024) throw fail('is larger than 1 MiB');
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw fail(
        err instanceof SyntaxError ? 'is not JSON' : `cannot be read (${(err as NodeJS.ErrnoException).code})`,
      );
    }
    this.#logins = parseAuths(raw, fail);
    this.#seen = seen;
  }
}

function parseAuths(raw: unknown, fail: (reason: string) => StewardError): Map<string, RegistryLogin> {
  const auths = (raw as { auths?: unknown } | null)?.auths;
  if (!auths || typeof auths !== 'object') throw fail('has no "auths" object (Docker config.json format)');
  const logins = new Map<string, RegistryLogin>();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    const registry = normalizeRegistry(key);
    const login = toLogin(registry, entry);
    if (!login) throw fail(`the entry for ${JSON.stringify(key)} has no auth, username/password or identitytoken`);
    logins.set(registry, login);
  }
  return logins;
}

function toLogin(registry: string, entry: unknown): RegistryLogin | undefined {
  if (!entry || typeof entry !== 'object') return undefined;
  const e = entry as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const serveraddress = registry === HUB ? 'https://index.docker.io/v1/' : registry;
  if (str(e.identitytoken)) return { serveraddress, identitytoken: new Secret(str(e.identitytoken)!) };
  let username = str(e.username);
  let password = str(e.password);
  const auth = str(e.auth);
  if (auth && (!username || !password)) {
    const plain = Buffer.from(auth, 'base64').toString('utf8');
    const at = plain.indexOf(':');
    if (at <= 0) return undefined;
    username = plain.slice(0, at);
    password = plain.slice(at + 1);
  }
  return username && password ? { serveraddress, username, password: new Secret(password) } : undefined;
}

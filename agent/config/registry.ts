import { readFile } from 'node:fs/promises';
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

export class RegistryAuth {
  private constructor(private readonly logins: ReadonlyMap<string, RegistryLogin>) {}

  static readonly none = new RegistryAuth(new Map());

  /** Reads docker.authFile; unreadable, not JSON or an entry that gives no credential: E_REGISTRY_AUTH. */
  static async load(config: AgentConfig): Promise<RegistryAuth> {
    if (!config.docker.authFile) return RegistryAuth.none;
    const file = resolveCredentialPath(config.docker.authFile);
    const fail = (reason: string) =>
      new StewardError('E_REGISTRY_AUTH', `docker.authFile ${file}: ${reason}`, {
        file: config.file,
        pointer: '/docker/authFile',
      });
    let raw: unknown;
    try {
      const bytes = await readFile(file);
      if (bytes.length > 1024 * 1024) throw fail('is larger than 1 MiB');
      raw = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      if (err instanceof StewardError) throw err;
      throw fail(
        err instanceof SyntaxError ? 'is not JSON' : `cannot be read (${(err as NodeJS.ErrnoException).code})`,
      );
    }
    const auths = (raw as { auths?: unknown } | null)?.auths;
    if (!auths || typeof auths !== 'object') throw fail('has no "auths" object (Docker config.json format)');
    const logins = new Map<string, RegistryLogin>();
    for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
      const registry = normalizeRegistry(key);
      const login = toLogin(registry, entry);
      if (!login) throw fail(`the entry for ${JSON.stringify(key)} has no auth, username/password or identitytoken`);
      logins.set(registry, login);
    }
    return new RegistryAuth(logins);
  }

  /** The login for an image's registry, if the file has one. */
  forImage(image: string): RegistryLogin | undefined {
    return this.logins.get(registryOf(image));
  }

  get registries(): string[] {
    return [...this.logins.keys()];
  }
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

import { request, type IncomingMessage } from 'node:http';
import type {
  ContainerCreateOptions,
  ContainerInfo,
  ContainerInspectInfo,
  ExecInspectInfo,
  ImageInspectInfo,
} from 'dockerode';

/**
 * The part of the Docker Engine API Steward uses, over the engine's unix socket with node:http.
 * (dockerode, with docker-modem, ssh2, tar-fs and grpc under it, was 26 MiB of the idle daemon's
 * resident memory: bench/README.md.) The types are the Engine API's as @types/dockerode writes
 * them. No API version is pinned: the engine's own is used. Errors carry what callers read:
 * `statusCode` and the engine's `json.message` for an HTTP error, `code` for a socket error.
 */
export class Engine {
  constructor(
    readonly socketPath: string,
    /** A request that sends nothing for this long is aborted (a pull streams progress all along). */
    readonly idleTimeoutMs = 120_000,
  ) {}

  version(): Promise<{ Version: string; ApiVersion: string }> {
    return this.#json('GET', '/version');
  }

  listContainers(opts: { all?: boolean } = {}): Promise<ContainerInfo[]> {
    return this.#json('GET', `/containers/json${opts.all ? '?all=1' : ''}`);
  }

  getContainer(id: string): EngineContainer {
    return new EngineContainer(this, id);
  }

  getImage(ref: string): { inspect(): Promise<ImageInspectInfo> } {
    return { inspect: () => this.#json('GET', `/images/${encodeURIComponent(ref)}/json`) };
  }

  async createContainer(opts: ContainerCreateOptions): Promise<EngineContainer> {
    const { name, ...body } = opts;
    const created = await this.#json<{ Id: string }>(
      'POST',
      `/containers/create${name ? `?name=${encodeURIComponent(name)}` : ''}`,
      { body },
    );
    return new EngineContainer(this, created.Id);
  }

  /**
   * Pulls `image` (`name`, `name:tag` or `name@digest`; no tag is `latest`, never "every tag").
   * Resolves when the engine's progress stream ends; an error line in it rejects. `authconfig`
   * goes only into the X-Registry-Auth header of this request.
   */
  async pull(image: string, opts: { authconfig?: Record<string, string> } = {}): Promise<void> {
    const { repository, tag } = splitImage(image);
    const headers: Record<string, string> = {};
    if (opts.authconfig) headers['X-Registry-Auth'] = authHeader(opts.authconfig);
    const path = `/images/create?fromImage=${encodeURIComponent(repository)}&tag=${encodeURIComponent(tag)}`;
    const res = await this.call('POST', path, { headers });
    let failed: string | undefined;
    let rest = '';
    for await (const chunk of res as AsyncIterable<Buffer>) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = (lines.pop() ?? '').slice(-MAX_LINE);
      for (const line of lines) failed = progressError(line) ?? failed;
    }
    failed = progressError(rest) ?? failed;
    if (failed !== undefined) throw new EngineError(failed, 500, failed);
  }

  /** One request; an answer of 300 and over rejects with its status and message (the body read, bounded). */
  async call(
    method: string,
    path: string,
    opts: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<IncomingMessage> {
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: {
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
            ...opts.headers,
          },
        },
        resolve,
      );
      req.setTimeout(this.idleTimeoutMs, () =>
        req.destroy(
          Object.assign(new Error(`Docker engine: no answer within ${this.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' }),
        ),
      );
      req.on('error', reject);
      req.end(payload);
    });
    if ((res.statusCode ?? 500) < 300) return res;
    const text = (await readBody(res)).toString('utf8');
    let message = text.trim() || `HTTP ${res.statusCode}`;
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // not JSON: the text itself
    }
    throw new EngineError(`(HTTP code ${res.statusCode}) ${message}`, res.statusCode ?? 500, message);
  }

  async #json<T>(method: string, path: string, opts: { body?: unknown } = {}): Promise<T> {
    const text = (await readBody(await this.call(method, path, opts))).toString('utf8');
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A request whose answer is not needed (start, stop, remove ...). */
  async empty(method: string, path: string, body?: unknown): Promise<void> {
    (await this.call(method, path, body === undefined ? {} : { body })).resume();
  }
}

/** A container by id or name. */
export class EngineContainer {
  constructor(
    private readonly engine: Engine,
    readonly id: string,
  ) {}

  #path(what = ''): string {
    return `/containers/${encodeURIComponent(this.id)}${what}`;
  }

  async inspect(): Promise<ContainerInspectInfo> {
    return JSON.parse((await readBody(await this.engine.call('GET', this.#path('/json')))).toString('utf8'));
  }

  start(): Promise<void> {
    return this.engine.empty('POST', this.#path('/start'));
  }

  stop(opts: { t: number }): Promise<void> {
    return this.engine.empty('POST', this.#path(`/stop?t=${opts.t}`));
  }

  restart(opts: { t: number }): Promise<void> {
    return this.engine.empty('POST', this.#path(`/restart?t=${opts.t}`));
  }

  unpause(): Promise<void> {
    return this.engine.empty('POST', this.#path('/unpause'));
  }

  remove(opts: { v: boolean; force: boolean }): Promise<void> {
    return this.engine.empty('DELETE', this.#path(`?v=${opts.v ? 1 : 0}&force=${opts.force ? 1 : 0}`));
  }

  /** `docker exec -d`: the command started detached; its result is read with inspect(). */
  async execDetached(cmd: string[]): Promise<{ inspect(): Promise<ExecInspectInfo> }> {
    const res = await this.engine.call('POST', this.#path('/exec'), {
      body: { Cmd: cmd, AttachStdout: false, AttachStderr: false },
    });
    const { Id } = JSON.parse((await readBody(res)).toString('utf8')) as { Id: string };
    // Detached, the engine answers at once but may keep the connection: it is closed here.
    (await this.engine.call('POST', `/exec/${Id}/start`, { body: { Detach: true } })).destroy();
    return {
      inspect: async () =>
        JSON.parse((await readBody(await this.engine.call('GET', `/exec/${Id}/json`))).toString('utf8')),
    };
  }
}

/** An HTTP error from the engine, in the shape callers read (dockerode's, which they were written for). */
export class EngineError extends Error {
  readonly json: { message: string };
  constructor(
    message: string,
    readonly statusCode: number,
    engineMessage: string,
  ) {
    super(message);
    this.json = { message: engineMessage };
  }
}

/** An answer larger than this is refused: the engine's largest (a container list) is far below. */
const MAX_BODY = 64 * 2 ** 20;
/** A progress line longer than this is cut (only its error field matters). */
const MAX_LINE = 64 * 1024;

async function readBody(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.destroy();
      throw new EngineError(`Docker engine answer over ${MAX_BODY} bytes`, 502, 'answer too large');
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The error a line of a pull's progress stream reports, if any. */
function progressError(line: string): string | undefined {
  if (!line.includes('"error')) return undefined;
  try {
    const v = JSON.parse(line) as { error?: unknown; errorDetail?: { message?: unknown } };
    if (typeof v.errorDetail?.message === 'string') return v.errorDetail.message;
    if (typeof v.error === 'string') return v.error;
  } catch {
    // a cut line: not an error report
  }
  return undefined;
}

/**
 * X-Registry-Auth: the login as JSON in URL-safe base64 *with* padding (the engine decodes it with
 * Go's base64.URLEncoding, which refuses unpadded input; Node's 'base64url' leaves padding off).
 */
function authHeader(login: Record<string, string>): string {
  return Buffer.from(JSON.stringify(login)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/** `name[:tag|@digest]`, a registry port not taken for a tag. */
export function splitImage(image: string): { repository: string; tag: string } {
  const at = image.indexOf('@');
  if (at >= 0) return { repository: image.slice(0, at), tag: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon > image.lastIndexOf('/')) return { repository: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repository: image, tag: 'latest' };
}

import { StewardError, type ErrorCode } from '../errors.js';
import { redactUrl, type GitHttp } from './http.js';
import { drain } from './pktline.js';

export type Service = 'git-upload-pack' | 'git-receive-pack';

/** A service's answer, or why what came back is not one (a v1-only server, a web page). */
export type Answer<T> = { ok: true; body: T } | { ok: false; why: string };

/**
 * The transport seam: how request bodies reach a Git service and its answers come back. GitRepo
 * speaks the Git protocol (pkt-lines, packs) on top and knows nothing of HTTP; smart HTTP is
 * SmartHttpTransport, and another transport (SSH) implements the same two calls. Failures to
 * reach the server and refused credentials throw classified StewardErrors, never with a secret.
 */
export interface GitTransport {
  /** The remote as messages show it (no credentials). */
  readonly where: string;
  /** One exchange whose answer is small (refs, a push report): read whole, up to a bound. */
  call(service: Service, body: Buffer, opts: { v2?: boolean; what: string }): Promise<Answer<Buffer>>;
  /** One exchange whose answer is a pack: its bytes as they arrive (bounded by source.maxPackSize). */
  stream(
    service: Service,
    body: Buffer,
    opts: { v2?: boolean; what: string },
  ): Promise<Answer<AsyncIterable<Uint8Array>>>;
}

/** Git's smart HTTP: a POST to <url>/<service> per exchange (gitprotocol-http). */
export class SmartHttpTransport implements GitTransport {
  readonly where: string;

  constructor(
    private readonly url: string,
    private readonly http: GitHttp,
    /** Sent with every request (the Authorization header is built once from the token). */
    private readonly headers: Record<string, string>,
  ) {
    this.where = redactUrl(url);
  }

  async call(service: Service, body: Buffer, opts: { v2?: boolean; what: string }): Promise<Answer<Buffer>> {
    let res;
    try {
      res = await this.http.send({
        url: `${this.url}/${service}`,
        method: 'POST',
        headers: this.#headers(service, opts),
        body,
      });
    } catch (err) {
      throw gitError(err, this.url, opts.what);
    }
    const refused = this.#refused(service, res.status, res.headers['content-type'] ?? '');
    return refused ? { ok: false, why: refused } : { ok: true, body: res.body };
  }

  async stream(
    service: Service,
    body: Buffer,
    opts: { v2?: boolean; what: string },
  ): Promise<Answer<AsyncIterable<Uint8Array>>> {
    let res;
    try {
      res = await this.http.request({
        url: `${this.url}/${service}`,
        method: 'POST',
        headers: this.#headers(service, opts),
        body: (async function* () {
          yield body;
        })(),
      });
    } catch (err) {
      throw gitError(err, this.url, opts.what);
    }
    const answer = (res.body ?? (async function* () {})()) as AsyncIterable<Uint8Array>;
    const type = String(res.headers?.['content-type'] ?? '');
    let refused: string | undefined;
    try {
      refused = this.#refused(service, res.statusCode, type);
    } catch (err) {
      await drain(answer);
      throw err;
    }
    if (!refused) return { ok: true, body: answer };
    await drain(answer);
    return { ok: false, why: refused };
  }

  #headers(service: Service, opts: { v2?: boolean }): Record<string, string> {
    return {
      ...this.headers,
      'content-type': `application/x-${service}-request`,
      accept: `application/x-${service}-result`,
      ...(opts.v2 ? { 'git-protocol': 'version=2' } : {}),
    };
  }

  /** Throws for refused credentials and a missing repository; otherwise why it is not an answer, if it is not. */
  #refused(service: Service, status: number, type: string): string | undefined {
    if (status === 401 || status === 403) throw httpStatusError(status, this.url);
    if (status === 404) throw new StewardError('E_GIT_UNREACHABLE', `no Git repository at ${this.where} (HTTP 404)`);
    if (status !== 200 || !new RegExp(`x-${service}-result`).test(type)) return `HTTP ${status} ${type}`.trim();
    return undefined;
  }
}

export function httpStatusError(status: number, url: string): StewardError {
  return new StewardError(
    'E_GIT_AUTH',
    `${redactUrl(url)} refused the credentials (HTTP ${status}); check source.auth`,
    {
      retry: 'transient',
    },
  );
}

/** OpenSSL's verdicts on a server certificate the host cannot vouch for (Node's err.code). */
const TLS_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
]);

/** What is wrong with the server's certificate, and what fixes it; undefined for any other error. */
function tlsProblem(code: string | undefined, reason: string): string | undefined {
  if (TLS_UNTRUSTED.has(code ?? ''))
    return `its TLS certificate is not trusted (${reason}); put the CA that signed it in source.caFile`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${reason} (the certificate is for another host)`;
  return undefined;
}

/** Classifies whatever isomorphic-git or the socket threw. Messages never carry credentials. */
export function gitError(err: unknown, url: string, what: string): StewardError {
  if (err instanceof StewardError) return err;
  const e = err as NodeJS.ErrnoException & { data?: { statusCode?: number }; caller?: string };
  const where = redactUrl(url);
  const status = e.data?.statusCode;
  if (status === 401 || status === 403) return httpStatusError(status, url);
  let code: ErrorCode = 'E_GIT_FETCH';
  let reason = e.message ?? String(err);
  if (e.code === 'E_GIT_TOO_LARGE')
    return new StewardError('E_GIT_TOO_LARGE', `${what} ${where}: ${reason}`, { retry: 'stalled', cause: err });
  const tls = tlsProblem(e.code, reason);
  if (tls) return new StewardError('E_GIT_TLS', `${what} ${where}: ${tls}`, { retry: 'stalled', cause: err });
  if (e.code === 'ETIMEDOUT' || e.name === 'TimeoutError') {
    code = 'E_GIT_TIMEOUT';
    reason = 'no answer before the deadline';
  } else if (
    ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'].includes(
      e.code ?? '',
    )
  ) {
    code = 'E_GIT_UNREACHABLE';
    reason = e.code!;
  } else if (status !== undefined) {
    code = 'E_GIT_UNREACHABLE';
    reason = `HTTP ${status}`;
  }
  return new StewardError(code, `${what} ${where}: ${reason.replaceAll(url, where)}`, {
    retry: 'transient',
    cause: err,
  });
}

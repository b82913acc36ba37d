import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { packetRanges, pkt } from './pktline.js';

/** Counters for the requests one client made; the bench reads them. */
export interface HttpStats {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface HttpOptions {
  /** Deadline of one request; pack downloads (POST .../git-upload-pack) get `packFactor` times it. */
  timeoutMs: number;
  packFactor?: number;
  /** The most bytes a pack download may bring (default DEFAULT_MAX_PACK_BYTES). */
  maxPackBytes?: number;
  /** Extra PEM CA certificates for HTTPS. */
  ca?: string;
  stats?: HttpStats;
  /** Aborts every request of this client (SIGTERM). */
  signal?: AbortSignal;
}

/**
 * An isomorphic-git HTTP client with what the stock one lacks: a deadline per request (a silent
 * server is an error after `timeoutMs`, never a hang), a private CA, and byte counters.
 */
export interface SendRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  /** The most bytes the buffered answer may have (default MAX_SMALL_ANSWER_BYTES). */
  maxBytes?: number;
}

/** Ref lists, ls-refs and push reports: a large monorepo's advertisement is a few MiB. */
export const MAX_SMALL_ANSWER_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_PACK_BYTES = 64 * 1024 * 1024;

/** A server sent more than the answer may hold: cut off, never buffered further. */
export class AnswerTooLargeError extends Error {
  readonly code = 'E_GIT_TOO_LARGE';
  constructor(url: string, limit: number, what: string) {
    super(`${redactUrl(url)} sent more than ${formatBytes(limit)} for ${what}; cut off`);
  }
}

const formatBytes = (n: number) =>
  n >= 1024 * 1024 ? `${Math.round(n / (1024 * 1024))} MiB` : `${Math.round(n / 1024)} KiB`;
export interface GitHttp extends HttpClient {
  /** One whole request and response, buffered (small protocol exchanges only). */
  send(req: SendRequest): Promise<{ status: number; headers: Record<string, string>; body: Buffer }>;
}

export function createHttpClient(opts: HttpOptions): GitHttp {
  const client = {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const { res, deadline, isPack } = await open(req, opts);
      const stats = opts.stats;
      if (isUploadPackAdvertisement(req, res)) {
        // Buffered (a ref list) so that a missing HEAD can be added; see withHead.
        const buf = await readAll(res, req.url, deadline, MAX_SMALL_ANSWER_BYTES, stats);
        return {
          url: req.url,
          method: 'GET',
          statusCode: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          headers: flatHeaders(res),
          body: (async function* () {
            yield withHead(buf);
          })(),
        };
      }
      const limit = isPack ? (opts.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES) : MAX_SMALL_ANSWER_BYTES;
      async function* body(): AsyncGenerator<Uint8Array> {
        let received = 0;
        try {
          for await (const chunk of res as AsyncIterable<Buffer>) {
            received += chunk.length;
            if (stats) stats.bytesReceived += chunk.length;
            if (received > limit)
              throw new AnswerTooLargeError(req.url, limit, isPack ? 'a pack (source.maxPackSize)' : 'one answer');
            yield chunk;
          }
        } catch (err) {
          throw deadline.passed() ? timeoutError(req.url) : err;
        } finally {
          // Also when the reader stops early: the socket and the timer go with the body.
          deadline.done();
          res.destroy();
        }
      }
      return {
        url: req.url,
        method: req.method ?? 'GET',
        statusCode: res.statusCode ?? 0,
        statusMessage: res.statusMessage ?? '',
        headers: flatHeaders(res),
        body: body(),
      };
    },
    async send(req: SendRequest): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
      const { res, deadline } = await open(req, opts);
      const body = await readAll(res, req.url, deadline, req.maxBytes ?? MAX_SMALL_ANSWER_BYTES, opts.stats);
      return { status: res.statusCode ?? 0, headers: flatHeaders(res), body };
    },
  };
  return client;
}

/** The whole response body, at most `limit` bytes; a deadline that passes while reading is a timeout error. */
async function readAll(
  res: IncomingMessage,
  url: string,
  deadline: Deadline,
  limit: number,
  stats?: HttpStats,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (stats) stats.bytesReceived += chunk.length;
      if (size > limit) throw new AnswerTooLargeError(url, limit, 'one answer');
      chunks.push(chunk);
    }
  } catch (err) {
    throw deadline.passed() ? timeoutError(url) : err;
  } finally {
    deadline.done();
    res.destroy();
  }
  return Buffer.concat(chunks);
}

/**
 * One request's deadline, from the first byte sent to the last byte read. Its own timer and
 * controller, referenced by the timer itself until it is cleared: `AbortSignal.any([
 * AbortSignal.timeout(t), outer])` was measured to never fire once the garbage collector ran
 * (the timeout signal is only weakly held by the combined one), so a server that streams forever
 * held a run for minutes and grew the heap to gigabytes.
 */
export interface Deadline {
  signal: AbortSignal;
  passed(): boolean;
  done(): void;
}

export function startDeadline(ms: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let passed = false;
  const timer = setTimeout(() => {
    passed = true;
    controller.abort(new Error(`deadline of ${ms} ms passed`));
  }, ms);
  timer.unref(); // the socket keeps the process alive while it is open; the timer need not
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    passed: () => passed,
    done() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

async function open(
  req: GitHttpRequest | SendRequest,
  opts: HttpOptions,
): Promise<{ res: IncomingMessage; deadline: Deadline; isPack: boolean }> {
  const chunks: Uint8Array[] = [];
  if (req.body instanceof Uint8Array) chunks.push(req.body);
  else if (req.body) for await (const c of req.body as AsyncIterable<Uint8Array>) chunks.push(c);
  const payload = Buffer.concat(chunks);
  // A POST to git-upload-pack is a pack download unless it is a protocol-v2 ls-refs (whose body
  // names its command). The size of the request tells nothing: a depth-1 fetch is under 200 bytes.
  const isPack =
    req.method === 'POST' &&
    /\/git-upload-pack$/.test(new URL(req.url).pathname) &&
    !payload.includes('command=ls-refs');
  const deadline = startDeadline(opts.timeoutMs * (isPack ? (opts.packFactor ?? 10) : 1), opts.signal);
  const url = new URL(req.url);
  // node:https (TLS) is loaded only by an https source: 0.5 MiB of RSS on Node 20, 2 MiB on 26.
  const make = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  if (opts.stats) {
    opts.stats.requests += 1;
    opts.stats.bytesSent += payload.length;
  }
  const headers: Record<string, string | number> = { ...(req.headers ?? {}) };
  if (payload.length > 0 || req.method === 'POST') headers['content-length'] = payload.length;
  return new Promise((resolve, reject) => {
    const r = make(
      url,
      { method: req.method ?? 'GET', headers, signal: deadline.signal, ...(opts.ca ? { ca: opts.ca } : {}) },
      (res) => resolve({ res, deadline, isPack }),
    );
    r.on('error', (err) => {
      deadline.done();
      reject(deadline.passed() ? timeoutError(req.url) : err);
    });
    r.end(payload);
  });
}

function isUploadPackAdvertisement(req: GitHttpRequest, res: IncomingMessage): boolean {
  if ((req.method ?? 'GET') !== 'GET' || res.statusCode !== 200) return false;
  const url = new URL(req.url);
  return (
    url.pathname.endsWith('/info/refs') &&
    url.searchParams.get('service') === 'git-upload-pack' &&
    /x-git-upload-pack-advertisement/.test(String(res.headers['content-type']))
  );
}

/**
 * A v1 ref advertisement with a `HEAD` line. A server whose HEAD names a branch that does not
 * exist (a bare repository made with `git init --bare` that only ever received other branches)
 * or that never lists HEAD (Gogs) leaves it out, and isomorphic-git's fetch then fails with
 * "Could not find HEAD" after downloading the pack, even for a named branch (isomorphic-git
 * issue #1654). Steward never uses the remote HEAD, so a HEAD line naming the first advertised
 * ref's commit is added right after that line (the capabilities stay on the first line).
 * Anything that is not a well-formed v1 advertisement is returned unchanged.
 */
export function withHead(buf: Buffer): Buffer {
  const lines = packetRanges(buf);
  if (!lines) return buf;
  // "# service=git-upload-pack", flush, then the refs (the first carries the capabilities), flush
  const refs = lines[0]?.text.startsWith('# service=') && lines[1]?.text === '' ? 2 : 0;
  const first = lines[refs];
  const m = first ? /^([0-9a-f]{40}) ([^\0\n]+)/.exec(first.text) : null;
  if (!first || !m || m[1] === '0'.repeat(40)) return buf;
  for (let i = refs; i < lines.length && lines[i]!.text !== ''; i++) {
    if (/^[0-9a-f]{40} HEAD(\0|\n|$)/.test(lines[i]!.text)) return buf;
  }
  return Buffer.concat([buf.subarray(0, first.end), Buffer.from(pkt(`${m[1]} HEAD\n`)), buf.subarray(first.end)]);
}

function timeoutError(url: string): Error {
  const err = new Error(`no answer from ${redactUrl(url)} before the deadline`);
  (err as NodeJS.ErrnoException).code = 'ETIMEDOUT';
  return err;
}

function flatHeaders(res: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** A URL with any user:password part removed, for messages. */
export function redactUrl(url: string): string {
  // An SSH URL's user (git@…) is an account name, not a credential; it stays.
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]/.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.protocol !== 'ssh:') u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

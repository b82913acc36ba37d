import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { NotifyEvent, NotifyTarget } from '../config/load.js';
import type { Secret } from '../config/secret.js';
import type { Logger } from '../log.js';

/**
 * One event as every receiver is told it. Built from the status document, which carries no
 * secret: no decrypted value, token or credential can reach a notification.
 */
export interface Notice {
  event: NotifyEvent;
  host: string;
  phase: string;
  previousPhase: string | null;
  /** The revision the event is about: the head (refused, waiting), the rolled-back one, or the applied one. */
  revision: string | null;
  appliedRevision: string | null;
  /** The Ready condition's reason and message (the refusal's code and message for revisionRefused). */
  reason: string;
  message: string;
  /** At most 10 failed resources: id, error code, message. */
  failed: Array<{ id: string; code?: string; message: string }>;
  at: string;
}

/** A receiver, with its token read. */
export interface Receiver extends NotifyTarget {
  token?: Secret;
}

/** How many tries a notice gets, and the deadline of each. */
const ATTEMPTS = 5;
const ATTEMPT_TIMEOUT_MS = 10_000;
/** Notices waiting per receiver; past it the oldest is dropped (a receiver down for days). */
export const MAX_QUEUED = 50;
const MAX_TEXT = 300;

const clip = (text: string) => (text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text);

/** The line a person reads: `edge-01: Degraded (RolledBack): revision 3f2c9e0 failed its health checks; ...`. */
export function headline(n: Notice): string {
  return `${n.host}: ${n.phase}${n.reason && n.reason !== n.phase ? ` (${n.reason})` : ''}${n.message ? `: ${clip(n.message)}` : ''}`;
}

function detail(n: Notice): string {
  const lines = [headline(n), `revision ${n.revision ?? 'none'}, applied ${n.appliedRevision ?? 'none'}`];
  for (const f of n.failed) lines.push(`- ${f.id}${f.code ? ` [${f.code}]` : ''}: ${clip(f.message)}`);
  return lines.join('\n');
}

const URGENT = new Set<NotifyEvent>(['rolledBack', 'revisionRefused', 'rolloutHalted']);

/** The body and headers of a notice in a receiver's format. Pure. */
export function render(n: Notice, format: NotifyTarget['format']): { headers: Record<string, string>; body: string } {
  if (format === 'ntfy')
    return {
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        // Header values must be ASCII: ntfy reads RFC 2047 for the rest, so only ASCII goes here.
        title: `steward ${n.host}: ${n.phase}`.replace(/[^\x20-\x7e]/g, '?'),
        tags: n.event,
        priority: URGENT.has(n.event) || n.phase === 'Failed' ? 'high' : 'default',
      },
      body: detail(n),
    };
  if (format === 'slack')
    return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: detail(n) }) };
  return { headers: { 'content-type': 'application/json' }, body: JSON.stringify(n) };
}

/** Where a receiver is, as logs may say it: its origin only (a webhook URL is a secret). */
export const originOf = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return '(unparsable url)';
  }
};

/** One POST: resolves with the status code; the answer is drained and ignored; never follows redirects. */
async function post(r: Receiver, rendered: { headers: Record<string, string>; body: string }): Promise<number> {
  const url = new URL(r.url);
  // node:https (TLS) only when a receiver is https: the idle daemon does not carry it (source/http.ts).
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  const body = Buffer.from(rendered.body, 'utf8');
  const headers: Record<string, string> = {
    ...rendered.headers,
    'content-length': String(body.length),
    'user-agent': 'steward-notify',
    ...(r.token ? { authorization: `Bearer ${r.token.reveal()}` } : {}),
  };
  return new Promise((resolve, reject) => {
    // One deadline for the whole exchange, answer included: a receiver that drips its answer
    // forever is cut off as one that never answers.
    const deadline = setTimeout(
      () => req.destroy(new Error(`no complete answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`)),
      ATTEMPT_TIMEOUT_MS,
    );
    const done =
      <T>(f: (v: T) => void) =>
      (v: T) => (clearTimeout(deadline), f(v));
    const req = send(url, { method: 'POST', headers }, (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => done(resolve)(res.statusCode ?? 0));
      res.on('error', done(reject));
    });
    req.on('error', done(reject));
    req.end(body);
  });
}

/**
 * Opens a connection to a receiver's server, the TLS handshake included for https (its
 * certificate checked as a delivery would), and closes it before a request is written: what
 * `steward doctor` checks without sending anything.
 */
export async function reachReceiver(receiverUrl: string, ms = 5000): Promise<void> {
  const url = new URL(receiverUrl);
  const tls = url.protocol === 'https:';
  const open = tls ? (await import('node:https')).request : httpRequest;
  await new Promise<void>((resolve, reject) => {
    // Never ended, so the request line and headers are never written.
    const req = open(url, { method: 'HEAD', timeout: ms });
    req.on('socket', (socket) =>
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        resolve();
        req.destroy();
      }),
    );
    req.on('timeout', () => req.destroy(new Error(`no connection within ${ms / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
  });
}

/** A status that a retry cannot fix: the receiver refused the notice itself. */
const permanent = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429;

/**
 * Delivers notices in the background, one queue per receiver, in order: a run hands its notices
 * over and goes on (a receiver that is down delays nothing). Each notice is tried up to 5 times,
 * waiting 1, 2, 4, 8 s between; a refusal (4xx) is not retried. Nothing it logs names the URL's
 * path or a token.
 */
export class Notifications {
  readonly #queues: Array<{ r: Receiver; at: string; queue: Notice[]; busy?: Promise<void> }>;
  readonly #log: Logger;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(receivers: Receiver[], log: Logger, sleep = (ms: number) => unrefSleep(ms)) {
    this.#queues = receivers.map((r, i) => ({ r, at: `notify[${i}] (${originOf(r.url)})`, queue: [] }));
    this.#log = log;
    this.#sleep = sleep;
  }

  /**
   * Queues one run's notices, most important first: each receiver gets the first one it wants
   * (a rollback also changes the phase; that is one change, told once). Returns at once.
   */
  send(notices: Notice[]): void {
    for (const q of this.#queues) {
      const wanted = notices.find((n) => q.r.events.includes(n.event));
      if (!wanted) continue;
      q.queue.push(wanted);
      const dropped = q.queue.splice(0, Math.max(0, q.queue.length - MAX_QUEUED));
      if (dropped.length > 0)
        this.#log.warn(`${q.at}: ${dropped.length} notification(s) dropped: the receiver is behind`);
      q.busy ??= this.#deliver(q).finally(() => delete q.busy);
    }
  }

  /** The receivers' URLs, in the config's order. */
  urls(): string[] {
    return this.#queues.map((q) => q.r.url);
  }

  /** What is queued or being delivered, per receiver: what a process that exits now would lose. */
  undelivered(): Array<{ url: string; notices: Notice[] }> {
    return this.#queues.filter((q) => q.queue.length > 0).map((q) => ({ url: q.r.url, notices: [...q.queue] }));
  }

  /**
   * Queues what an earlier process could not deliver, ahead of anything queued since (behind the
   * one being delivered, which #deliver removes when it is done); sent at once.
   */
  resume(kept: Array<{ url: string; notices: Notice[] }>): void {
    for (const { url, notices } of kept) {
      const q = this.#queues.find((x) => x.r.url === url);
      if (!q || notices.length === 0) continue;
      const at = q.busy ? 1 : 0;
      q.queue.splice(at, 0, ...notices);
      q.queue.splice(at, Math.max(0, q.queue.length - MAX_QUEUED));
      q.busy ??= this.#deliver(q).finally(() => delete q.busy);
    }
  }

  /** Notices queued or being delivered. */
  pending(): number {
    return this.#queues.reduce((n, q) => n + q.queue.length, 0);
  }

  /** Waits for the queues to empty, at most `ms` (steward once, a stop); says what was left. */
  async drain(ms: number): Promise<void> {
    const busy = this.#queues.flatMap((q) => (q.busy ? [q.busy] : []));
    if (busy.length === 0) return;
    // A timer that holds the process: a retry's wait is unref'd, and with nothing else left to do
    // the process would exit at once, before the retry and before what is left could be kept.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(busy), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    for (const q of this.#queues)
      if (q.queue.length > 0) this.#log.warn(`${q.at}: ${q.queue.length} notification(s) not delivered before exit`);
  }

  async #deliver(q: { r: Receiver; at: string; queue: Notice[] }): Promise<void> {
    while (q.queue.length > 0) {
      const n = q.queue[0]!;
      const why = await this.#tryAll(q.r, n);
      if (q.queue[0] === n) q.queue.shift();
      if (why) this.#log.warn({ event: n.event }, `${q.at}: notification not delivered: ${why}`);
      else this.#log.debug({ event: n.event }, `${q.at}: notification delivered`);
    }
  }

  /** Undefined once delivered, else why not. */
  async #tryAll(r: Receiver, n: Notice): Promise<string | undefined> {
    const rendered = render(n, r.format);
    let why = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const status = await post(r, rendered);
        if (status >= 200 && status < 300) return undefined;
        why = `HTTP ${status}`;
        if (permanent(status)) return `${why} (not retried)`;
      } catch (err) {
        why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      if (attempt < ATTEMPTS) await this.#sleep(1000 * 2 ** (attempt - 1));
    }
    return `${why} after ${ATTEMPTS} tries`;
  }
}

const unrefSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

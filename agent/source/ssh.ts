import { connect as netConnect, type Socket } from 'node:net';
import type { Client, ClientChannel } from 'ssh2';
import { StewardError } from '../errors.js';
import {
  AnswerTooLargeError,
  DEFAULT_MAX_PACK_BYTES,
  MAX_SMALL_ANSWER_BYTES,
  startDeadline,
  type Deadline,
  type HttpStats,
} from './http.js';
import { checkHostKey, hostName, listedTypes } from './knownhosts.js';
import { loadSsh2, type SshAuth } from './sshauth.js';
import { gitError, type Answer, type GitTransport, type Service } from './transport.js';
import { FLUSH } from './pktline.js';
import { fetchAnswerFromV0, fetchRequestV0, lsRefsAnswer, readV0Advertisement, v2Command } from './sshv0.js';

/** Where an SSH source.url points. */
export interface SshEndpoint {
  user: string;
  host: string;
  port: number;
  /** As git sends it to the server's git-upload-pack: absolute, `~user/…`, or relative to the home. */
  path: string;
}

/** ssh://[user@]host[:port]/path and the scp form user@host:path, read as git reads them. */
export function parseSshUrl(url: string, defaultUser: string): SshEndpoint {
  const full = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?(\/.*)$/.exec(url);
  if (full) {
    const [, user, host, port, path] = full;
    return {
      user: user ?? defaultUser,
      host: host!.replace(/^\[(.*)\]$/, '$1'),
      port: port ? Number(port) : 22,
      path: path!.startsWith('/~') ? path!.slice(1) : path!,
    };
  }
  const scp = /^([^@]+)@([^:]+):(.+)$/.exec(url);
  if (!scp) throw new StewardError('E_CONFIG_INVALID', `${url} is not an SSH URL`);
  return { user: scp[1]!, host: scp[2]!, port: 22, path: scp[3]! };
}

/** A word for the server's shell as git quotes it (sq_quote): git-shell accepts only this form. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, "'\\''").replace(/!/g, "'\\!'")}'`;

export interface SshTransportOptions {
  url: string;
  username: string;
  auth: SshAuth;
  timeoutMs: number;
  maxPackBytes?: number;
  stats?: HttpStats;
  signal?: AbortSignal;
  /** How long an unused connection is kept for the next poll. */
  keepMs?: number;
}

/**
 * How long a connection is kept open after its last exchange. An idle poll on a kept connection
 * costs one channel (a few hundred bytes) instead of a handshake (key exchange, host key,
 * authentication: ~4 KiB and tens of milliseconds of CPU; see bench/README.md). Five minutes is
 * under the idle timeout of the NATs and firewalls edge links sit behind, so a kept connection
 * is rarely found dead; when it is (the server or a middlebox closed it), the exchange is made
 * again on a new one.
 */
const KEEP_MS = 5 * 60 * 1000;

interface Connection {
  client: Client;
  sock: Socket;
  alive: boolean;
  /** Socket byte counters already added to the stats. */
  counted: { read: number; written: number };
}

/**
 * Git over SSH: every exchange is one `git-upload-pack '<path>'` (or receive-pack) channel on a
 * connection kept between polls, the request written after the server's advertisement and the
 * answer read until the channel closes. Protocol v2 is asked for with GIT_PROTOCOL (sshd must
 * AcceptEnv it; every hosted Git does); a server that answers in v0 is spoken to in v0. The host
 * key must be in knownHostsFile.
 */
export class SshTransport implements GitTransport {
  readonly where: string;
  readonly #to: SshEndpoint;
  #conn: Promise<Connection> | undefined;
  #idle: NodeJS.Timeout | undefined;
  #active = 0;

  constructor(private readonly opts: SshTransportOptions) {
    this.#to = parseSshUrl(opts.url, opts.username);
    this.where = `ssh://${this.#to.user}@${hostName(this.#to.host, this.#to.port)}${this.#to.path.startsWith('/') ? '' : '/'}${this.#to.path}`;
  }

  async call(service: Service, body: Buffer, opts: { v2?: boolean; what: string }): Promise<Answer<Buffer>> {
    const answer = await this.#exchange(service, body, opts, MAX_SMALL_ANSWER_BYTES, 1);
    const chunks: Buffer[] = [];
    for await (const c of answer) chunks.push(Buffer.from(c));
    return { ok: true, body: Buffer.concat(chunks) };
  }

  async stream(
    service: Service,
    body: Buffer,
    opts: { v2?: boolean; what: string },
  ): Promise<Answer<AsyncIterable<Uint8Array>>> {
    const limit = this.opts.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES;
    return { ok: true, body: await this.#exchange(service, body, opts, limit, 10) };
  }

  /** Closes the kept connection (a stopping daemon). */
  close(): void {
    clearTimeout(this.#idle);
    void this.#conn?.then((c) => c.client.end()).catch(() => undefined);
    this.#conn = undefined;
  }

  /**
   * Opens the service's channel, reads the advertisement, sends `body` and returns the rest of
   * what the server writes, up to `limit` bytes, within `factor` × timeoutMs.
   */
  async #exchange(
    service: Service,
    body: Buffer,
    opts: { v2?: boolean; what: string },
    limit: number,
    factor: number,
  ): Promise<AsyncIterable<Uint8Array>> {
    const deadline = startDeadline(this.opts.timeoutMs * factor, this.opts.signal);
    this.#hold();
    let channel: Channel | undefined;
    let released = false;
    // Once: when the answer is read, when anything fails, or when the deadline passes (an answer
    // its reader dropped unread must not keep the socket, and with it the process, alive).
    const release = () => {
      if (released) return;
      released = true;
      deadline.done();
      channel?.close();
      if (channel && this.opts.stats) countBytes(channel.conn, this.opts.stats);
      this.#letGo();
    };
    deadline.signal.addEventListener('abort', release, { once: true });
    try {
      channel = await this.#channel(service, opts, deadline);
      const advertised = await channel.advertisement();
      if (service === 'git-upload-pack' && opts.v2 && advertised[0] !== 'version 2')
        return v0Exchange(channel, advertised, body, limit, release);
      channel.send(body);
      return channel.rest(limit, release);
    } catch (err) {
      const passed = deadline.passed();
      release();
      // Whatever broke may have broken the connection too: the next exchange starts afresh.
      if (!(err instanceof StewardError) || passed || err.code === 'E_GIT_TIMEOUT') this.close();
      throw gitError(passed ? timeout(this.where) : err, this.opts.url, opts.what);
    }
  }

  /** A channel running the service; on a kept connection found dead, once more on a new one. */
  async #channel(service: Service, opts: { v2?: boolean }, deadline: Deadline): Promise<Channel> {
    const command = `${service} ${shellQuote(this.#to.path)}`;
    const env = service === 'git-upload-pack' && opts.v2 ? { GIT_PROTOCOL: 'version=2' } : undefined;
    for (let attempt = 0; ; attempt++) {
      const fresh = !this.#conn;
      const conn = await this.#connection(deadline);
      try {
        return await openChannel(conn, command, env, deadline, this.opts.timeoutMs, this.where);
      } catch (err) {
        if (fresh || attempt > 0 || deadline.passed() || conn.alive) throw err;
        this.#conn = undefined;
      }
    }
  }

  #connection(deadline: Deadline): Promise<Connection> {
    clearTimeout(this.#idle);
    const kept = this.#conn;
    if (kept) return kept.then((c) => (c.alive ? c : this.#reconnect(deadline)));
    return this.#reconnect(deadline);
  }

  #reconnect(deadline: Deadline): Promise<Connection> {
    const conn = connectSsh(this.#to, this.opts, deadline, this.where);
    this.#conn = conn;
    conn.then(
      (c) => c.client.on('close', () => this.#conn === conn && (this.#conn = undefined)),
      () => this.#conn === conn && (this.#conn = undefined),
    );
    return conn;
  }

  /** While an exchange runs, its socket keeps the process alive; a kept idle one does not. */
  #hold(): void {
    this.#active += 1;
    void this.#conn?.then((c) => c.sock.ref()).catch(() => undefined);
  }

  #letGo(): void {
    this.#active -= 1;
    if (this.#active > 0 || !this.#conn) return;
    const conn = this.#conn;
    void conn
      .then((c) => {
        if (this.#active > 0 || this.#conn !== conn) return;
        c.sock.unref();
        this.#idle = setTimeout(() => this.close(), this.opts.keepMs ?? KEEP_MS);
        this.#idle.unref();
      })
      .catch(() => undefined);
  }
}

function countBytes(conn: Connection, stats: HttpStats): void {
  stats.requests += 1;
  stats.bytesReceived += conn.sock.bytesRead - conn.counted.read;
  stats.bytesSent += conn.sock.bytesWritten - conn.counted.written;
  conn.counted = { read: conn.sock.bytesRead, written: conn.sock.bytesWritten };
}

const timeout = (where: string) =>
  new StewardError('E_GIT_TIMEOUT', `${where}: no answer before the deadline`, { retry: 'transient' });

/**
 * A server that answered in protocol v0 (GIT_PROTOCOL was not passed on): ls-refs is answered
 * from its advertisement, fetch is rewritten (sshv0.ts). Costs nothing more than v2 on the wire.
 */
function v0Exchange(
  channel: Channel,
  advertised: string[],
  body: Buffer,
  limit: number,
  release: () => void,
): AsyncIterable<Uint8Array> {
  const ad = readV0Advertisement(advertised);
  if (v2Command(body) === 'ls-refs') {
    channel.send(Buffer.from(FLUSH)); // wants nothing: upload-pack ends
    const rest = channel.rest(limit, release);
    return (async function* () {
      yield lsRefsAnswer(body, ad);
      for await (const _ of rest) void _;
    })();
  }
  channel.send(fetchRequestV0(body, ad));
  return fetchAnswerFromV0(channel.rest(limit, release));
}

/**
 * zlib after login first, then none (a server that offers no compression is spoken to as before).
 * git-receive-pack has no protocol v2: every push over SSH begins with one advertisement line per
 * ref on the server (~93 bytes each), so a status report's download grows with the number of host
 * branches; compressed it is about a third (bench/status-ssh.ts: 93.6 KB -> 29.6 KB per report at
 * 1,000 branches, and 1.7 KB -> 0.5 KB for a small exchange). Packs are zlib already and gain
 * nothing, at a few ms of CPU per MiB.
 */
const COMPRESSION = ['zlib@openssh.com', 'zlib', 'none'];

/** ssh-rsa keys are offered with SHA-2 signatures first (OpenSSH 8.8 refuses SHA-1 ones). */
const hostKeyAlgorithms = (types: string[]): string[] =>
  types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));

/** TCP, key exchange, the host key check and public key authentication, within timeoutMs. */
async function connectSsh(
  to: SshEndpoint,
  opts: SshTransportOptions,
  deadline: Deadline,
  where: string,
): Promise<Connection> {
  const { Client } = await loadSsh2();
  const sock = netConnect({ host: to.host, port: to.port });
  const client = new Client();
  let refusal: string | undefined;
  const types = listedTypes(opts.auth.knownHosts, hostName(to.host, to.port));
  const conn: Connection = { client, sock, alive: true, counted: { read: 0, written: 0 } };
  return new Promise<Connection>((resolve, reject) => {
    const onAbort = () => client.destroy();
    deadline.signal.addEventListener('abort', onAbort, { once: true });
    const settle = (err?: Error) => {
      deadline.signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(conn);
    };
    client.once('ready', () => settle());
    client.on('error', (err: Error & { level?: string }) => {
      conn.alive = false;
      settle(connectError(err, refusal, to, opts.auth, where));
    });
    client.on('close', () => {
      conn.alive = false;
      settle(new StewardError('E_GIT_UNREACHABLE', `${where} closed the connection`, { retry: 'transient' }));
    });
    client.on('end', () => (conn.alive = false));
    client.connect({
      sock,
      username: to.user,
      privateKey: opts.auth.key.reveal(),
      readyTimeout: opts.timeoutMs,
      algorithms: {
        compress: COMPRESSION as never,
        ...(types.length > 0 ? { serverHostKey: hostKeyAlgorithms(types) as never } : {}),
      },
      hostVerifier: (key: Buffer) => {
        const verdict = checkHostKey(opts.auth.knownHosts, to.host, to.port, key);
        if (!verdict.ok) refusal = verdict.reason;
        return verdict.ok;
      },
    });
  });
}

function connectError(
  err: Error & { level?: string; code?: string },
  refusal: string | undefined,
  to: SshEndpoint,
  auth: SshAuth,
  where: string,
): Error {
  if (refusal) return new StewardError('E_GIT_HOST_KEY', `${where}: ${refusal}`, { retry: 'stalled' });
  if (err.level === 'client-authentication')
    return new StewardError(
      'E_GIT_AUTH',
      `${where} refused the deploy key ${auth.fingerprint} for user "${to.user}"; add its public half (ssh-keygen -y -f sshKeyFile) to the repository's deploy keys`,
      { retry: 'stalled' },
    );
  if (err.level === 'client-timeout') return timeout(where);
  if (err.code) return err;
  return new StewardError('E_GIT_UNREACHABLE', `${where}: ${err.message}`, { retry: 'transient' });
}

function openChannel(
  conn: Connection,
  command: string,
  env: Record<string, string> | undefined,
  deadline: Deadline,
  readMs: number,
  where: string,
): Promise<Channel> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(timeout(where));
    deadline.signal.addEventListener('abort', onAbort, { once: true });
    conn.client.exec(command, env ? { env } : {}, (err, ch) => {
      deadline.signal.removeEventListener('abort', onAbort);
      if (err) return reject(err);
      deadline.signal.addEventListener('abort', () => ch.destroy(), { once: true });
      resolve(new Channel(conn, ch, readMs, where));
    });
  });
}

const MAX_STDERR = 4096;

/** A channel's stdout as pkt-lines and bytes, each read within timeoutMs; stderr kept for messages. */
class Channel {
  #stderr = '';
  #exit: number | undefined;
  #buf: Buffer = Buffer.alloc(0);
  readonly #it: AsyncIterator<Buffer>;

  constructor(
    readonly conn: Connection,
    private readonly ch: ClientChannel,
    private readonly readMs: number,
    private readonly where: string,
  ) {
    ch.stderr.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString('utf8')).slice(0, MAX_STDERR)));
    ch.on('exit', (code: number | null) => (this.#exit = code ?? undefined));
    this.#it = (ch as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** The server's advertisement: its pkt-line texts up to the flush (at most 16 MiB). */
  async advertisement(): Promise<string[]> {
    const lines: string[] = [];
    let read = 0;
    for (;;) {
      const len = await this.#packet();
      if (len === 0) {
        this.#buf = this.#buf.subarray(4);
        return lines;
      }
      const text = this.#buf.subarray(4, len).toString('utf8').replace(/\n$/, '');
      if (text.startsWith('ERR ')) throw serverFailure(this.where, text.slice(4), this.#exit);
      lines.push(text);
      read += len;
      if (read > MAX_SMALL_ANSWER_BYTES)
        throw new AnswerTooLargeError(this.where, MAX_SMALL_ANSWER_BYTES, 'its ref advertisement');
      this.#buf = this.#buf.subarray(len);
    }
  }

  send(body: Buffer): void {
    this.ch.end(body);
  }

  /** Everything after the advertisement, up to `limit` bytes; `done` once it ends or fails. */
  async *rest(limit: number, done: () => void): AsyncIterable<Uint8Array> {
    let received = this.#buf.length;
    try {
      if (this.#buf.length > 0) yield this.#buf;
      for (;;) {
        const next = await nextWithin(this.#it, this.readMs, this.where);
        if (next.done) break;
        received += next.value.length;
        if (received > limit)
          throw new AnswerTooLargeError(
            this.where,
            limit,
            limit === MAX_SMALL_ANSWER_BYTES ? 'one answer' : 'a pack (source.maxPackSize)',
          );
        yield next.value;
      }
      if (this.#exit !== undefined && this.#exit !== 0 && received === 0) throw this.#failed();
    } finally {
      done();
    }
  }

  close(): void {
    this.ch.destroy();
  }

  /** Reads until one whole pkt-line is buffered; its length (0 for a flush). */
  async #packet(): Promise<number> {
    while (this.#buf.length < 4 || (pktLength(this.#buf) > 4 && this.#buf.length < pktLength(this.#buf))) {
      const next = await nextWithin(this.#it, this.readMs, this.where);
      if (next.done) throw this.#failed();
      this.#buf = this.#buf.length === 0 ? next.value : Buffer.concat([this.#buf, next.value]);
    }
    const len = pktLength(this.#buf);
    if (Number.isNaN(len) || (len > 0 && len < 4)) throw protocolError(this.where, this.#buf);
    return len;
  }

  #failed(): StewardError {
    return serverFailure(this.where, this.#stderr, this.#exit);
  }
}

const pktLength = (buf: Buffer): number => parseInt(buf.subarray(0, 4).toString('latin1'), 16);

async function nextWithin(it: AsyncIterator<Buffer>, ms: number, where: string): Promise<IteratorResult<Buffer>> {
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StewardError('E_GIT_TIMEOUT', `${where} sent nothing for ${ms} ms`, { retry: 'transient' })),
      ms,
    );
  });
  try {
    return await Promise.race([it.next(), silent]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the server said when the command failed: git's first "fatal:" line, or its exit status. */
function serverFailure(where: string, said: string, exit: number | undefined): StewardError {
  const line = said
    .split('\n')
    .map((l) => l.replace(/[^\x20-\x7e]/g, '').trim())
    .find((l) => l !== '');
  const reason = line
    ? line.slice(0, 300)
    : `the command ended${exit !== undefined ? ` with status ${exit}` : ''} without an answer`;
  const missing = /not appear to be a git repository|does not exist|not found|no such/i.test(reason);
  return new StewardError(missing ? 'E_GIT_UNREACHABLE' : 'E_GIT_FETCH', `${where}: ${reason}`, { retry: 'transient' });
}

function protocolError(where: string, buf: Buffer): StewardError {
  const shown = JSON.stringify(buf.subarray(0, 16).toString('latin1'));
  return new StewardError('E_GIT_PROTOCOL', `${where} did not answer in pkt-lines (it began with ${shown})`, {
    retry: 'transient',
  });
}

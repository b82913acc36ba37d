import * as fs from 'node:fs';
import { mkdir, readdir, rm, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { StewardError, type ErrorCode } from '../errors.js';
import { agentVersion } from '../version.js';
import { redactUrl, type GitHttp } from './http.js';

/** Compaction starts when a gitdir holds more packs than this. */
export const MAX_PACKS = 8;

export interface RepoOptions {
  gitdir: string;
  url: string;
  http: GitHttp;
  /** Sent with every request (the Authorization header is built once from the token). */
  headers: Record<string, string>;
}

/**
 * A bare local gitdir mirroring one remote branch at a time, shallowly. isomorphic-git is not
 * safe for concurrent operations on one gitdir, so every method runs through one queue.
 */
export class GitRepo {
  readonly gitdir: string;
  readonly url: string;
  readonly #http: RepoOptions['http'];
  readonly #headers: Record<string, string>;
  #queue: Promise<unknown> = Promise.resolve();
  /** Set once the server answered a v2 ls-refs with something else: use v1 discovery from then on. */
  #v1Only = false;
  #ready = false;
  /**
   * isomorphic-git's cache of parsed pack indexes. Without it every object read parses every
   * pack index again; it is dropped by `freshCache()` at the start of each run or publish, so it
   * never outlives the packs it describes by long.
   */
  cache: object = {};

  constructor(opts: RepoOptions) {
    this.gitdir = opts.gitdir;
    this.url = opts.url;
    this.#http = opts.http;
    this.#headers = opts.headers;
  }

  freshCache(): void {
    this.cache = {};
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Creates the bare gitdir when missing and points its one remote at the configured URL. */
  async init(): Promise<void> {
    if (this.#ready) return;
    if (!fs.existsSync(join(this.gitdir, 'HEAD'))) {
      await mkdir(this.gitdir, { recursive: true });
      await git.init({ fs, gitdir: this.gitdir, bare: true, defaultBranch: 'main' });
    }
    await git.setConfig({ fs, gitdir: this.gitdir, path: 'remote.origin.url', value: this.url });
    await git.setConfig({ fs, gitdir: this.gitdir, path: 'remote.origin.fetch', value: '+refs/heads/*:refs/remotes/origin/*' });
    this.#ready = true;
  }

  /**
   * The remote branch's commit, or undefined when the branch does not exist. One POST of a
   * protocol-v2 ls-refs with a ref prefix (about 150 bytes each way); servers that do not speak
   * v2 get the v1 ref advertisement instead, remembered for this process.
   */
  remoteHead(branch: string): Promise<string | undefined> {
    return this.#serial(async () => {
      const ref = `refs/heads/${branch}`;
      if (!this.#v1Only) {
        const found = await this.#lsRefsV2(ref);
        if (found !== 'unsupported') return found;
        this.#v1Only = true;
      }
      try {
        const refs = await git.listServerRefs({ http: this.#http, url: this.url, headers: this.#headers, prefix: ref, protocolVersion: 1 });
        return refs.find((r) => r.ref === ref)?.oid;
      } catch (err) {
        throw gitError(err, this.url, 'cannot list the branches of');
      }
    });
  }

  async #lsRefsV2(ref: string): Promise<string | undefined | 'unsupported'> {
    const body = [pkt('command=ls-refs\n'), pkt(`agent=steward/${agentVersion}\n`), '0001', pkt(`ref-prefix ${ref}\n`), '0000'].join('');
    const res = await this.#rpc('git-upload-pack', Buffer.from(body), { 'git-protocol': 'version=2' }, 'cannot reach');
    if (res.status === 401 || res.status === 403) throw httpStatusError(res.status, this.url);
    if (res.status === 404) throw new StewardError('E_GIT_UNREACHABLE', `no Git repository at ${redactUrl(this.url)} (HTTP 404)`, { retry: 'transient' });
    if (res.status !== 200 || !/x-git-upload-pack-result/.test(res.headers['content-type'] ?? '')) return 'unsupported';
    const lines = parsePktLines(res.body);
    if (lines === undefined) return 'unsupported';
    for (const line of lines) {
      const m = /^([0-9a-f]{40}) (\S+)/.exec(line);
      if (!m) return 'unsupported'; // a v0/v1 advertisement or an error packet
      if (m[2] === ref) return m[1];
    }
    return undefined;
  }

  /** One smart-HTTP POST to `service`, buffered; a transport failure is a classified StewardError. */
  async #rpc(service: 'git-upload-pack' | 'git-receive-pack', body: Buffer, headers: Record<string, string>, what: string): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    try {
      return await this.#http.send({
        url: `${this.url}/${service}`,
        method: 'POST',
        headers: {
          ...this.#headers,
          'content-type': `application/x-${service}-request`,
          accept: `application/x-${service}-result`,
          'user-agent': `git/steward-${agentVersion}`,
          ...headers,
        },
        body,
      });
    } catch (err) {
      throw gitError(err, this.url, what);
    }
  }

  /**
   * Removes packs without their index: what a fetch or a compaction cut off part way (a crash,
   * a server that sent junk, a pack over the size limit) leaves. A pack without an index is
   * never read, so it is only ever space lost.
   */
  async #sweepPartialPacks(): Promise<void> {
    const dir = join(this.gitdir, 'objects', 'pack');
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      const partial = n.startsWith('tmp-') || (n.endsWith('.pack') && !names.includes(n.replace(/\.pack$/, '.idx')));
      if (partial) await rm(join(dir, n), { force: true });
    }
  }

  /** Fetches `branch` shallowly (depth 1) and returns the fetched commit. */
  fetch(branch: string): Promise<string> {
    return this.#serial(async () => {
      await this.init();
      await this.#sweepPartialPacks();
      try {
        const res = await git.fetch({
          fs,
          http: this.#http,
          gitdir: this.gitdir,
          remote: 'origin',
          url: this.url,
          ref: branch,
          remoteRef: branch,
          singleBranch: true,
          depth: 1,
          tags: false,
          headers: this.#headers,
          cache: this.cache,
        });
        if (!res.fetchHead) throw new StewardError('E_GIT_NO_BRANCH', `branch "${branch}" does not exist at ${redactUrl(this.url)}`, { retry: 'transient' });
        await git.writeRef({ fs, gitdir: this.gitdir, ref: `refs/steward/${branch}`, value: res.fetchHead, force: true });
        return res.fetchHead;
      } catch (err) {
        await this.#sweepPartialPacks();
        throw gitError(err, this.url, `cannot fetch branch "${branch}" from`);
      }
    });
  }

  /**
   * Is `ancestor` in the history of `head`? Walks parents from `head`; where the shallow history
   * ends, fetches deeper (100 commits at a time, relative to the shallow boundary) up to `limit`
   * commits. 'unknown' when the limit is reached first.
   */
  isDescendant(branch: string, head: string, ancestor: string, limit = 1000): Promise<boolean | 'unknown'> {
    return this.#serial(async () => {
      if (head === ancestor) return true;
      const seen = new Set<string>();
      const queue = [head];
      let deepened = 0;
      while (queue.length > 0) {
        const oid = queue.shift()!;
        if (oid === ancestor) return true;
        if (seen.has(oid)) continue;
        if (seen.size >= limit) return 'unknown';
        let parents: string[];
        try {
          parents = (await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.cache })).commit.parent;
        } catch {
          if (deepened >= limit) return 'unknown';
          try {
            await git.fetch({ fs, http: this.#http, gitdir: this.gitdir, remote: 'origin', url: this.url, ref: branch, remoteRef: branch, singleBranch: true, depth: 100, relative: true, tags: false, headers: this.#headers });
          } catch (err) {
            throw gitError(err, this.url, 'cannot deepen the history of');
          }
          deepened += 100;
          queue.unshift(oid);
          if (!(await this.hasCommit(oid))) return 'unknown';
          continue;
        }
        seen.add(oid);
        queue.push(...parents);
      }
      return false;
    });
  }

  /** The commit last fetched for `branch`, if any. */
  async localHead(branch: string): Promise<string | undefined> {
    try {
      return await git.resolveRef({ fs, gitdir: this.gitdir, ref: `refs/steward/${branch}` });
    } catch {
      return undefined;
    }
  }

  async hasCommit(oid: string): Promise<boolean> {
    try {
      await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.cache });
      return true;
    } catch {
      return false;
    }
  }

  /** Number of pack files: each fetch that brings objects adds one. */
  async packCount(): Promise<number> {
    try {
      return (await readdir(join(this.gitdir, 'objects', 'pack'))).filter((f) => f.endsWith('.idx')).length;
    } catch {
      return 0;
    }
  }

  /**
   * Rewrites the object store as one pack holding only `keep` (commits) and their trees and
   * blobs, and drops everything else. isomorphic-git never repacks, so without this a host
   * that fetches every minute grows a pack per change forever.
   *
   * After a crash at any point the store is still readable: the new pack is complete (with its
   * index) before any old pack is removed, and extra packs only cost space until the next run.
   */
  compact(keep: string[]): Promise<{ before: number; after: number }> {
    return this.#serial(async () => {
      const packDir = join(this.gitdir, 'objects', 'pack');
      const before = (await readdir(packDir)).filter((f) => f.endsWith('.idx')).length;
      const commits = [];
      for (const oid of new Set(keep)) if (await this.hasCommit(oid)) commits.push(oid);
      if (commits.length === 0) return { before, after: before };
      const oids = new Set<string>();
      for (const c of commits) await this.#collect(c, oids);
      const { packfile, filename } = await git.packObjects({ fs, gitdir: this.gitdir, oids: [...oids], cache: this.cache });
      if (!packfile) throw new Error('packObjects returned no pack');
      const tmp = join(packDir, `tmp-${process.pid}-${filename}`);
      await writeFile(tmp, packfile);
      await rename(tmp, join(packDir, filename));
      await git.indexPack({ fs, dir: this.gitdir, gitdir: this.gitdir, filepath: join('objects', 'pack', filename), cache: this.cache });
      const keepBase = filename.replace(/\.pack$/, '');
      for (const f of await readdir(packDir)) if (!f.startsWith(keepBase)) await rm(join(packDir, f), { force: true });
      for (const d of await readdir(join(this.gitdir, 'objects'))) {
        if (/^[0-9a-f]{2}$/.test(d)) await rm(join(this.gitdir, 'objects', d), { recursive: true, force: true });
      }
      await writeFile(join(this.gitdir, 'shallow'), commits.map((c) => `${c}\n`).join(''));
      this.cache = {};
      return { before, after: 1 };
    });
  }

  async #collect(oid: string, into: Set<string>): Promise<void> {
    if (into.has(oid)) return;
    into.add(oid);
    const { object, type } = await git.readObject({ fs, gitdir: this.gitdir, oid, format: 'parsed', cache: this.cache });
    if (type === 'commit') await this.#collect((object as { tree: string }).tree, into);
    else if (type === 'tree') {
      for (const e of object as Array<{ type: string; oid: string }>) {
        if (e.type === 'tree') await this.#collect(e.oid, into);
        else if (e.type === 'blob') into.add(e.oid);
      }
    }
  }

  /** Runs `fn` in this repo's queue (for callers that write objects or refs). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#serial(fn);
  }

  /**
   * Moves the server's `branch` from `expect` (undefined: absent) to `commit` in one request: a
   * receive-pack POST carrying the ref update and a pack of `objects` (what the server lacks).
   * The server applies the update only while the branch is still at `expect`, so this is a
   * compare-and-swap with nothing between looking and writing: a lost race costs one small POST
   * and no ref advertisement. (isomorphic-git's push first fetches the advertisement, and in a
   * shallow history cannot find what the server has, so it sends every host's document again.)
   * The update has no fast-forward check on this side: a squash is an update like any other.
   */
  pushCommit(branch: string, opts: { expect: string | undefined; commit: string; objects: string[] }): Promise<void> {
    return this.#serial(async () => {
      const ref = `refs/heads/${branch}`;
      const { packfile } = await git.packObjects({ fs, gitdir: this.gitdir, oids: opts.objects, cache: this.cache });
      if (!packfile) throw new StewardError('E_INTERNAL', 'packObjects returned no pack');
      const command = pkt(`${opts.expect ?? ZERO} ${opts.commit} ${ref}\0report-status agent=steward/${agentVersion}\n`) + '0000';
      const res = await this.#rpc('git-receive-pack', Buffer.concat([Buffer.from(command), packfile]), {}, `cannot push "${branch}" to`);
      if (res.status === 401 || res.status === 403) throw httpStatusError(res.status, this.url);
      if (res.status !== 200) throw new StewardError('E_GIT_UNREACHABLE', `cannot push "${branch}" to ${redactUrl(this.url)}: HTTP ${res.status}`, { retry: 'transient' });
      const lines = /x-git-receive-pack-result/.test(res.headers['content-type'] ?? '') ? parsePktLines(res.body) : undefined;
      const unpack = lines?.find((l) => l.startsWith('unpack '));
      const status = lines?.find((l) => l === `ok ${ref}` || l.startsWith(`ng ${ref} `));
      if (!unpack || !status) throw new StewardError('E_STATUS_PUSH', `push of "${branch}": ${redactUrl(this.url)} did not answer with a receive-pack report`, { retry: 'transient' });
      if (status === `ok ${ref}` && unpack === 'unpack ok') return;
      const reason = status.startsWith('ng ') ? status.slice(`ng ${ref} `.length) : unpack;
      // A lost race ("failed to update ref") or a pack the server could not take is worth another
      // try on the new tip; a refusal by the server's policy (a hook, a protected branch, no
      // history rewrites) says the same thing every time.
      const policy = /declined|denied|deny|protected|not allowed|forbidden|permission|non-fast-forward/i.test(reason);
      throw new StewardError('E_STATUS_PUSH', `push of "${branch}" refused: ${reason}`, { retry: policy ? 'stalled' : 'transient' });
    });
  }
}

const ZERO = '0'.repeat(40);

function pkt(s: string): string {
  return (Buffer.byteLength(s) + 4).toString(16).padStart(4, '0') + s;
}

/** Splits a pkt-line stream up to the first flush packet; undefined when it is not one. */
export function parsePktLines(buf: Buffer): string[] | undefined {
  const lines: string[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = parseInt(buf.subarray(at, at + 4).toString('ascii'), 16);
    if (Number.isNaN(len)) return undefined;
    if (len === 0) return lines;
    if (len < 4 || at + len > buf.length) return undefined;
    lines.push(buf.subarray(at + 4, at + len).toString('utf8').replace(/\n$/, ''));
    at += len;
  }
  return undefined;
}

function httpStatusError(status: number, url: string): StewardError {
  return new StewardError('E_GIT_AUTH', `${redactUrl(url)} refused the credentials (HTTP ${status}); check source.auth`, { retry: 'transient' });
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
  if (e.code === 'E_GIT_TOO_LARGE') return new StewardError('E_GIT_TOO_LARGE', `${what} ${where}: ${reason}`, { retry: 'stalled', cause: err });
  if (e.code === 'ETIMEDOUT' || e.name === 'TimeoutError') {
    code = 'E_GIT_TIMEOUT';
    reason = 'no answer before the deadline';
  } else if (['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'].includes(e.code ?? '')) {
    code = 'E_GIT_UNREACHABLE';
    reason = e.code!;
  } else if (status !== undefined) {
    code = 'E_GIT_UNREACHABLE';
    reason = `HTTP ${status}`;
  }
  return new StewardError(code, `${what} ${where}: ${reason.replaceAll(url, where)}`, { retry: 'transient', cause: err });
}

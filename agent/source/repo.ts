import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstat as lstatCb,
  mkdir as mkdirCb,
  readdir as readdirCb,
  readFile as readFileCb,
  readlink,
  rm as rmCb,
  rmdir,
  stat as statCb,
  symlink,
  unlink,
  writeFile as writeFileCb,
} from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { mkdir, open, readdir, readFile, rm, rename, writeFile } from '../files.js';
import { StewardError } from '../errors.js';
import { agentVersion } from '../version.js';
import { DEFAULT_MAX_PACK_BYTES, redactUrl, type GitHttp } from './http.js';
import { MissingObjectError, ObjectStore, parseCommit, parseTree } from './objects.js';
import { indexPack, packBuffer, writePack, type ObjectSink } from './pack.js';
import { parsePktLines, pkt, readFetchAnswer, type FetchAnswer } from './pktline.js';
import { gitError, SmartHttpTransport, type GitTransport } from './transport.js';

export { parsePktLines };

/** Compaction starts when a gitdir holds more packs than this. */
export const MAX_PACKS = 8;

export interface RepoOptions {
  gitdir: string;
  url: string;
  http: GitHttp;
  /** Sent with every request (the Authorization header is built once from the token). */
  headers: Record<string, string>;
  /** The largest object a pack may hold (source.maxPackSize; default DEFAULT_MAX_PACK_BYTES). */
  maxObjectBytes?: number;
  /** How protocol-v2 exchanges reach the server; smart HTTP over `http` unless given. */
  transport?: GitTransport;
}

interface PackRequest {
  /** The commits asked for: one branch's, or (readFleet) every host's status branch at once. */
  wants: string[];
  depth: number;
  /** Deepen relative to the current shallow boundary (`isDescendant`) instead of from `want`. */
  relative?: boolean;
  haves: string[];
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
  readonly #transport: GitTransport;
  #queue: Promise<unknown> = Promise.resolve();
  /** Set once the server answered a v2 ls-refs with something else: use v1 discovery from then on. */
  #v1Only = false;
  #ready = false;
  /**
   * isomorphic-git's cache of parsed pack indexes. Without it every object read parses every
   * pack index again; it is dropped by `freshCache()` at the start of each run or publish, so it
   * never outlives the packs it describes by long. Only what isomorphic-git still does (push
   * packs of new loose objects, v1 fetches) uses it; every read goes through `objects`.
   */
  cache: object = {};
  /** Reads objects one at a time, by position in the pack files (never a whole pack in memory). */
  readonly objects: ObjectStore;

  constructor(opts: RepoOptions) {
    this.gitdir = opts.gitdir;
    this.url = opts.url;
    this.#http = opts.http;
    this.#headers = opts.headers;
    this.#transport = opts.transport ?? new SmartHttpTransport(opts.url, opts.http, opts.headers);
    this.objects = new ObjectStore(opts.gitdir, opts.maxObjectBytes ?? DEFAULT_MAX_PACK_BYTES);
  }

  freshCache(): void {
    this.cache = {};
    this.objects.reset();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Creates the bare gitdir when missing and points its one remote at the configured URL. */
  async init(): Promise<void> {
    if (this.#ready) return;
    if (!existsSync(join(this.gitdir, 'HEAD'))) {
      await mkdir(this.gitdir, { recursive: true });
      await git.init({ fs, gitdir: this.gitdir, bare: true, defaultBranch: 'main' });
    }
    // Written only when it differs: a `steward once` from a timer writes nothing when nothing changed.
    const remote = { 'remote.origin.url': this.url, 'remote.origin.fetch': '+refs/heads/*:refs/remotes/origin/*' };
    for (const [path, value] of Object.entries(remote))
      if ((await git.getConfig({ fs, gitdir: this.gitdir, path })) !== value)
        await git.setConfig({ fs, gitdir: this.gitdir, path, value });
    this.#ready = true;
  }

  /**
   * The remote branch's commit, or undefined when the branch does not exist. One POST of a
   * protocol-v2 ls-refs with a ref prefix (about 150 bytes each way); servers that do not speak
   * v2 get the v1 ref advertisement instead, remembered for this process.
   */
  remoteHead(branch: string): Promise<string | undefined> {
    const ref = `refs/heads/${branch}`;
    return this.remoteRefs(ref).then((refs) => refs.get(ref));
  }

  async #lsRefsV2(ref: string): Promise<string | undefined | 'unsupported'> {
    const refs = await this.#lsRefsPrefixV2(ref);
    return refs === 'unsupported' ? refs : refs.get(ref);
  }

  /** Every ref under the prefixes, by protocol-v2 ls-refs: one POST, only the matching refs in the answer. */
  async #lsRefsPrefixV2(...prefixes: string[]): Promise<Map<string, string> | 'unsupported'> {
    const body = [
      pkt('command=ls-refs\n'),
      pkt(`agent=steward/${agentVersion}\n`),
      '0001',
      ...prefixes.map((p) => pkt(`ref-prefix ${p}\n`)),
      '0000',
    ].join('');
    const res = await this.#transport.call('git-upload-pack', Buffer.from(body), { v2: true, what: 'cannot reach' });
    if (!res.ok) return 'unsupported';
    const lines = parsePktLines(res.body);
    if (lines === undefined) return 'unsupported';
    const refs = new Map<string, string>();
    for (const line of lines) {
      const m = /^([0-9a-f]{40}) (\S+)/.exec(line);
      if (!m) return 'unsupported'; // a v0/v1 advertisement or an error packet
      if (prefixes.some((p) => m[2]!.startsWith(p))) refs.set(m[2]!, m[1]!);
    }
    return refs;
  }

  /** The server's branches whose ref starts with one of `prefixes` ("refs/heads/steward-status"), by ref. */
  remoteRefs(...prefixes: string[]): Promise<Map<string, string>> {
    return this.#serial(async () => {
      if (!this.#v1Only) {
        const found = await this.#lsRefsPrefixV2(...prefixes);
        if (found !== 'unsupported') return found;
        this.#v1Only = true;
      }
      try {
        const refs = await git.listServerRefs({
          http: this.#http,
          url: this.url,
          headers: this.#headers,
          ...(prefixes.length === 1 ? { prefix: prefixes[0] } : {}),
          protocolVersion: 1,
        });
        return new Map(refs.filter((r) => prefixes.some((p) => r.ref.startsWith(p))).map((r) => [r.ref, r.oid]));
      } catch (err) {
        throw gitError(err, this.url, 'cannot list the branches of');
      }
    });
  }

  /**
   * Fetches the commits of several branches at depth 1 in one request (protocol v2); those
   * already in the store are not asked for. A v1-only server is fetched branch by branch.
   * `onObject` is handed every object of the fetched pack as it is indexed, for a caller that
   * reads them all next (readFleet) instead of reading each back from the pack.
   */
  fetchCommits(branches: Map<string, string>, onObject?: ObjectSink): Promise<void> {
    return this.#serial(async () => {
      await this.init();
      await this.#sweepPartialPacks();
      const held = await this.objects.holds(branches.values());
      const missing = [...branches].filter(([, oid]) => !held.has(oid));
      if (missing.length === 0) return;
      try {
        if (this.#v1Only) for (const [branch] of missing) await this.#fetchV1(branch, { depth: 1 });
        else await this.#fetchPack({ wants: missing.map(([, oid]) => oid), depth: 1, haves: [] }, onObject);
      } catch (err) {
        await this.#sweepPartialPacks();
        throw gitError(err, this.url, 'cannot fetch the status branches from');
      }
    });
  }

  /** Records `oid` as the commit of `branch` here (after this host pushed it: it is the branch's only writer). */
  setLocalHead(branch: string, oid: string): Promise<void> {
    return git.writeRef({ fs, gitdir: this.gitdir, ref: `refs/steward/${branch}`, value: oid, force: true });
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

  /**
   * Fetches `branch` shallowly (depth 1) and returns the fetched commit. `known` is its commit
   * when the caller just asked (saves the ls-refs). A commit already in the store is not fetched
   * again. Against a protocol-v2 server (git 2.18 and later, every major host) the pack streams
   * to a file under objects/pack and is indexed from there; servers that speak only v1 go
   * through isomorphic-git, which buffers the pack (capped by source.maxPackSize all the same).
   */
  fetch(branch: string, known?: string): Promise<string> {
    return this.#serial(async () => {
      await this.init();
      await this.#sweepPartialPacks();
      try {
        let want: string | undefined | 'unsupported' = this.#v1Only
          ? 'unsupported'
          : (known ?? (await this.#lsRefsV2(`refs/heads/${branch}`)));
        if (want === 'unsupported') {
          this.#v1Only = true;
          want = await this.#fetchV1(branch, { depth: 1 });
        } else if (want === undefined) {
          throw new StewardError('E_GIT_NO_BRANCH', `branch "${branch}" does not exist at ${redactUrl(this.url)}`, {
            retry: 'transient',
          });
        } else if (!(await this.objects.has(want))) {
          const local = await this.localHead(branch);
          const haves = local && (await this.objects.has(local)) ? [local] : [];
          await this.#fetchPack({ wants: [want], depth: 1, haves });
        }
        // An unchanged ref is not written again: an idle poll writes nothing to the disk.
        if ((await this.localHead(branch)) !== want)
          await git.writeRef({ fs, gitdir: this.gitdir, ref: `refs/steward/${branch}`, value: want, force: true });
        return want;
      } catch (err) {
        await this.#sweepPartialPacks();
        throw gitError(err, this.url, `cannot fetch branch "${branch}" from`);
      }
    });
  }

  /** isomorphic-git's fetch, for servers without protocol v2; returns the fetched commit. */
  async #fetchV1(branch: string, opts: { depth: number; relative?: boolean }): Promise<string> {
    const res = await git.fetch({
      fs,
      http: this.#http,
      gitdir: this.gitdir,
      remote: 'origin',
      url: this.url,
      ref: branch,
      remoteRef: branch,
      singleBranch: true,
      depth: opts.depth,
      ...(opts.relative ? { relative: true } : {}),
      tags: false,
      headers: this.#headers,
      cache: this.cache,
    });
    this.objects.reset();
    if (!res.fetchHead)
      throw new StewardError('E_GIT_NO_BRANCH', `branch "${branch}" does not exist at ${redactUrl(this.url)}`, {
        retry: 'transient',
      });
    return res.fetchHead;
  }

  /**
   * One protocol-v2 `fetch`: the side-band pack is written to objects/pack/tmp-*.pack as it
   * arrives (the HTTP client cuts it at source.maxPackSize), then indexed from the file, and only
   * then named pack-<sha>.pack with its .idx, so a pack is visible whole or not at all. The
   * shallow boundary the server reports is recorded in `shallow`.
   */
  async #fetchPack(req: PackRequest, onObject?: ObjectSink): Promise<void> {
    const shallow = await this.#readShallow();
    const res = await this.#transport.stream('git-upload-pack', fetchRequest(req, shallow), {
      v2: true,
      what: 'cannot fetch from',
    });
    if (!res.ok) throw new StewardError('E_GIT_FETCH', `cannot fetch from ${redactUrl(this.url)}: ${res.why}`);
    const packDir = join(this.gitdir, 'objects', 'pack');
    await mkdir(packDir, { recursive: true });
    const tmp = join(packDir, `tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    const fh = await open(`${tmp}.pack`, 'w');
    let answer: FetchAnswer;
    try {
      answer = await readFetchAnswer(res.body, async (data) => void (await fh.write(data)));
      await fh.sync();
    } finally {
      await fh.close();
    }
    // The shallow boundary first: a boundary naming a commit not yet here costs nothing, a
    // commit here without its boundary would look like a whole history.
    await this.#recordShallow(shallow, answer, tmp);
    const got = new Set<string>();
    await this.#installPack(tmp, answer.packBytes > 0, (oid, obj) => {
      if (obj.type === 'commit') got.add(oid);
      onObject?.(oid, obj);
    });
    for (const want of req.wants)
      if (!got.has(want) && !(await this.objects.has(want)))
        throw new StewardError(
          'E_GIT_FETCH',
          `${redactUrl(this.url)} sent a pack without the commit ${want.slice(0, 7)} that was asked for`,
        );
  }

  async #recordShallow(shallow: string[], answer: FetchAnswer, tmp: string): Promise<void> {
    if (answer.shallow.length === 0 && answer.unshallow.length === 0) return;
    const next = new Set(shallow);
    for (const oid of answer.shallow) next.add(oid);
    for (const oid of answer.unshallow) next.delete(oid);
    await writeSynced(`${tmp}.shallow`, [...next].map((oid) => `${oid}\n`).join(''));
    await rename(`${tmp}.shallow`, join(this.gitdir, 'shallow'));
  }

  /** Indexes the received pack from its file and names both pack-<sha>: visible whole or not at all. */
  async #installPack(tmp: string, received: boolean, onObject?: ObjectSink): Promise<void> {
    if (received) {
      const indexed = await indexPack(
        `${tmp}.pack`,
        { maxObjectBytes: this.objects.maxObjectBytes },
        (oid) => this.objects.read(oid),
        onObject,
      );
      await writeSynced(`${tmp}.idx`, indexed.idx);
      const name = join(this.gitdir, 'objects', 'pack', `pack-${indexed.sha}`);
      await rename(`${tmp}.pack`, `${name}.pack`);
      await rename(`${tmp}.idx`, `${name}.idx`);
    } else await rm(`${tmp}.pack`, { force: true });
    this.objects.reset();
  }

  async #readShallow(): Promise<string[]> {
    const text = await readFile(join(this.gitdir, 'shallow'), 'utf8').catch(() => '');
    return text.split('\n').filter((l) => /^[0-9a-f]{40}$/.test(l));
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
          parents = (await this.objects.readCommit(oid)).parents;
        } catch (err) {
          if (!(err instanceof MissingObjectError)) throw err;
          if (deepened >= limit) return 'unknown';
          await this.#deepen(branch, head);
          deepened += 100;
          queue.unshift(oid);
          if (!(await this.objects.has(oid))) return 'unknown';
          continue;
        }
        seen.add(oid);
        queue.push(...parents);
      }
      return false;
    });
  }

  /** Fetches 100 more commits below the shallow boundary of `head`'s history. */
  async #deepen(branch: string, head: string): Promise<void> {
    try {
      if (this.#v1Only) await this.#fetchV1(branch, { depth: 100, relative: true });
      else await this.#fetchPack({ wants: [head], depth: 100, relative: true, haves: [] });
    } catch (err) {
      await this.#sweepPartialPacks();
      throw gitError(err, this.url, 'cannot deepen the history of');
    }
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
      await this.objects.readCommit(oid);
      return true;
    } catch (err) {
      if (err instanceof MissingObjectError) return false;
      throw err;
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
      // Written object by object (never the whole pack in memory), indexed, then named.
      const tmp = join(packDir, `tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      const packed = await writePack(`${tmp}.pack`, [...oids], (oid) => this.objects.read(oid));
      await writeSynced(`${tmp}.idx`, packed.idx);
      const keepBase = `pack-${packed.sha}`;
      await rename(`${tmp}.pack`, join(packDir, `${keepBase}.pack`));
      await rename(`${tmp}.idx`, join(packDir, `${keepBase}.idx`));
      this.objects.reset();
      for (const f of await readdir(packDir)) if (!f.startsWith(keepBase)) await rm(join(packDir, f), { force: true });
      for (const d of await readdir(join(this.gitdir, 'objects'))) {
        if (/^[0-9a-f]{2}$/.test(d)) await rm(join(this.gitdir, 'objects', d), { recursive: true, force: true });
      }
      await writeFile(join(this.gitdir, 'shallow'), commits.map((c) => `${c}\n`).join(''));
      this.freshCache();
      return { before, after: 1 };
    });
  }

  async #collect(oid: string, into: Set<string>): Promise<void> {
    if (into.has(oid)) return;
    into.add(oid);
    const { type, data } = await this.objects.read(oid);
    if (type === 'commit') await this.#collect(parseCommit(oid, data).tree, into);
    else if (type === 'tree') {
      for (const e of parseTree(oid, data)) {
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
      const packfile = await packBuffer(opts.objects, (oid) => this.objects.read(oid));
      const command =
        pkt(`${opts.expect ?? ZERO} ${opts.commit} ${ref}\0report-status agent=steward/${agentVersion}\n`) + '0000';
      const res = await this.#transport.call('git-receive-pack', Buffer.concat([Buffer.from(command), packfile]), {
        what: `cannot push "${branch}" to`,
      });
      if (!res.ok)
        throw new StewardError('E_GIT_UNREACHABLE', `cannot push "${branch}" to ${redactUrl(this.url)}: ${res.why}`);
      const lines = parsePktLines(res.body);
      const unpack = lines?.find((l) => l.startsWith('unpack '));
      const status = lines?.find((l) => l === `ok ${ref}` || l.startsWith(`ng ${ref} `));
      if (!unpack || !status)
        throw new StewardError(
          'E_STATUS_PUSH',
          `push of "${branch}": ${redactUrl(this.url)} did not answer with a receive-pack report`,
          { retry: 'transient' },
        );
      if (status === `ok ${ref}` && unpack === 'unpack ok') return;
      const reason = status.startsWith('ng ') ? status.slice(`ng ${ref} `.length) : unpack;
      // A lost race ("failed to update ref") or a pack the server could not take is worth another
      // try on the new tip; a refusal by the server's policy (a hook, a protected branch, no
      // history rewrites) says the same thing every time.
      const policy = /declined|denied|deny|protected|not allowed|forbidden|permission|non-fast-forward/i.test(reason);
      throw new StewardError('E_STATUS_PUSH', `push of "${branch}" refused: ${reason}`, {
        retry: policy ? 'stalled' : 'transient',
      });
    });
  }
}

const ZERO = '0'.repeat(40);
/**
 * The file system isomorphic-git writes the store's refs and config through: node:fs's callback
 * calls, which isomorphic-git wraps in promises itself (node:fs/promises is kept out of the agent,
 * agent/files.ts; a namespace import of node:fs would make the bundle read every export of it).
 */
const fs = {
  readFile: readFileCb,
  writeFile: writeFileCb,
  mkdir: mkdirCb,
  rmdir,
  unlink,
  stat: statCb,
  lstat: lstatCb,
  readdir: readdirCb,
  readlink,
  symlink,
  rm: rmCb,
};

/** Writes a file and syncs it before it is renamed into place (an index must never be empty after a power loss). */
async function writeSynced(path: string, data: string | Buffer): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The body of a protocol-v2 fetch for one commit, shallow at `depth`. */
function fetchRequest(req: PackRequest, shallow: string[]): Buffer {
  const lines = [
    'command=fetch\n',
    `agent=steward/${agentVersion}\n`,
    '0001',
    // thin-pack: deltas against what the `have` commits hold (without it, git sends the whole
    // tree again on a depth-1 fetch); the bases are appended locally, see indexPack.
    ...(req.haves.length > 0 ? ['thin-pack\n'] : []),
    'no-progress\n',
    'ofs-delta\n',
    `deepen ${req.depth}\n`,
    ...(req.relative ? ['deepen-relative\n'] : []),
    ...shallow.map((oid) => `shallow ${oid}\n`),
    ...req.wants.map((oid) => `want ${oid}\n`),
    ...req.haves.map((oid) => `have ${oid}\n`),
    'done\n',
  ];
  return Buffer.from(lines.map((l) => (l === '0001' ? l : pkt(l))).join('') + '0000');
}

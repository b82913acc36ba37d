import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { mkdir, readdir, readFile, rename, stat, writeFile } from '../files.js';
import {
  applyDelta,
  inflateAt,
  objectId,
  PackFile,
  PackFormatError,
  PackIndex,
  PackTooLargeError,
  readEntryHeader,
  type GitObject,
  type ObjectType,
} from './pack.js';

export interface TreeEntry {
  mode: string;
  path: string;
  oid: string;
  type: 'blob' | 'tree' | 'commit';
}

export interface Commit {
  tree: string;
  parents: string[];
  message: string;
}

export interface Signature {
  name: string;
  email: string;
  /** Seconds since the epoch (UTC). */
  timestamp: number;
}

/** The object is in no pack and not loose: the store is behind the branch, or the history was cut here. */
export class MissingObjectError extends Error {
  override name = 'MissingObjectError';
  constructor(readonly oid: string) {
    super(`object ${oid} is not in the local store`);
  }
}

/** Deltas may chain (git's default depth is 50); a longer chain than this is a hostile pack. */
const MAX_DELTA_CHAIN = 10_000;
/** Delta bases kept between reads of one run (objects of one tree often share bases). */
const BASE_CACHE_BYTES = 8 * 1024 * 1024;

interface Pack {
  name: string;
  index: PackIndex;
  file?: Promise<PackFile>;
}

/**
 * Reads objects from a gitdir: loose objects, then packs through their index, one object at a
 * time by position in the pack file. Nothing larger than one object (and a small cache of delta
 * bases) is held, and `reset()` drops all of it; it runs at the start of every run and after
 * every fetch or compaction, which are the only things that change the set of packs.
 */
export class ObjectStore {
  #packs?: Promise<Pack[]>;
  #bases = new Map<string, GitObject>();
  #baseBytes = 0;
  /** Reads in flight, and the timer that closes the pack files once none has run for a second. */
  #active = 0;
  #idle?: NodeJS.Timeout;

  constructor(
    readonly gitdir: string,
    readonly maxObjectBytes: number,
  ) {}

  reset(): void {
    const old = this.#packs;
    this.#packs = undefined;
    this.#bases.clear();
    this.#baseBytes = 0;
    void old
      ?.then((packs) => Promise.all(packs.map((p) => p.file?.then((f) => f.close()).catch(() => undefined))))
      .catch(() => undefined);
  }

  async has(oid: string): Promise<boolean> {
    try {
      await this.read(oid);
      return true;
    } catch (err) {
      if (err instanceof MissingObjectError) return false;
      throw err;
    }
  }

  /**
   * Which of `oids` the store holds, for many at once (readFleet asks about every host's tip):
   * the pack indexes are in memory, and a loose object is looked for only where its fan-out
   * folder exists, so a fresh store answers without a file system call per id.
   */
  async holds(oids: Iterable<string>): Promise<Set<string>> {
    const packs = await this.#packList();
    const fanout = new Set(await readdir(join(this.gitdir, 'objects')).catch(() => [] as string[]));
    const held = new Set<string>();
    for (const oid of oids) {
      if (packs.some((p) => p.index.offsetOf(oid) !== undefined)) held.add(oid);
      else if (fanout.has(oid.slice(0, 2)) && (await this.has(oid))) held.add(oid);
    }
    return held;
  }

  /** One object by its id, whole (at most maxObjectBytes). */
  async read(oid: string): Promise<GitObject> {
    this.#active++;
    clearTimeout(this.#idle);
    try {
      return await this.#read(oid, 0);
    } finally {
      if (--this.#active === 0) {
        // Open pack files are kept for the reads of one walk, not between runs.
        this.#idle = setTimeout(() => this.#closeFiles(), 1000);
        this.#idle.unref();
      }
    }
  }

  async #closeFiles(): Promise<void> {
    if (this.#active > 0 || !this.#packs) return;
    for (const p of await this.#packs.catch(() => [] as Pack[])) {
      const file = p.file;
      delete p.file;
      await file?.then((f) => f.close()).catch(() => undefined);
    }
  }

  async #read(oid: string, depth: number): Promise<GitObject> {
    if (!/^[0-9a-f]{40}$/.test(oid)) throw new MissingObjectError(oid);
    // Packs first: an index lookup is in memory, a loose lookup is a file system call (and
    // reading a fleet's status documents is tens of thousands of packed reads).
    for (const p of await this.#packList()) {
      const offset = p.index.offsetOf(oid);
      if (offset !== undefined) return this.#packed(p, offset, depth);
    }
    const loose = await this.#loose(oid);
    if (loose) return loose;
    throw new MissingObjectError(oid);
  }

  async readCommit(oid: string): Promise<Commit> {
    return parseCommit(oid, await this.#typed(oid, 'commit'));
  }

  async readTree(oid: string): Promise<TreeEntry[]> {
    return parseTree(oid, await this.#typed(oid, 'tree'));
  }

  async readBlob(oid: string): Promise<Buffer> {
    return this.#typed(oid, 'blob');
  }

  /**
   * The entry at `path` ('' is the root tree) in `commit`'s tree, or undefined when some part
   * of the path does not exist or is not a directory.
   */
  async resolvePath(commit: string, path: string): Promise<TreeEntry | undefined> {
    let entry: TreeEntry = { mode: '040000', path: '', oid: (await this.readCommit(commit)).tree, type: 'tree' };
    for (const name of path.split('/').filter(Boolean)) {
      if (entry.type !== 'tree') return undefined;
      const found = (await this.readTree(entry.oid)).find((e) => e.path === name);
      if (!found) return undefined;
      entry = found;
    }
    return entry;
  }

  /** Writes a loose object (unless it is already loose) and returns its id. */
  async write(type: ObjectType, data: Buffer): Promise<string> {
    const oid = objectId(type, data);
    const dir = join(this.gitdir, 'objects', oid.slice(0, 2));
    const path = join(dir, oid.slice(2));
    if (
      await stat(path).then(
        () => true,
        () => false,
      )
    )
      return oid;
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `tmp-${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, deflateSync(Buffer.concat([Buffer.from(`${type} ${data.length}\0`), data])));
    await rename(tmp, path);
    return oid;
  }

  writeBlob(data: Buffer): Promise<string> {
    return this.write('blob', data);
  }

  /** A tree of `entries`, in Git's order (a directory sorts as if its name ended with "/"). */
  writeTree(entries: TreeEntry[]): Promise<string> {
    const key = (e: TreeEntry) => Buffer.from(e.type === 'tree' ? `${e.path}/` : e.path);
    const sorted = [...entries].sort((a, b) => Buffer.compare(key(a), key(b)));
    const parts = sorted.map((e) =>
      Buffer.concat([Buffer.from(`${e.mode === '040000' ? '40000' : e.mode} ${e.path}\0`), Buffer.from(e.oid, 'hex')]),
    );
    return this.write('tree', Buffer.concat(parts));
  }

  writeCommit(c: { tree: string; parents: string[]; author: Signature; message: string }): Promise<string> {
    const who = `${c.author.name} <${c.author.email}> ${c.author.timestamp} +0000`;
    const head = [`tree ${c.tree}`, ...c.parents.map((p) => `parent ${p}`), `author ${who}`, `committer ${who}`];
    return this.write('commit', Buffer.from(`${head.join('\n')}\n\n${c.message}`));
  }

  async #typed(oid: string, type: ObjectType): Promise<Buffer> {
    const obj = await this.read(oid);
    if (obj.type !== type) throw new PackFormatError(`object ${oid} is a ${obj.type}, not a ${type}`);
    return obj.data;
  }

  async #loose(oid: string): Promise<GitObject | undefined> {
    let raw: Buffer;
    try {
      raw = await readFile(join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let buf: Buffer;
    try {
      buf = inflateSync(raw, { maxOutputLength: this.maxObjectBytes + 64 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw new PackTooLargeError(`loose object ${oid} is larger than ${this.maxObjectBytes} bytes`);
      throw new PackFormatError(`loose object ${oid} is not valid zlib data`);
    }
    const nul = buf.indexOf(0);
    const m = /^(commit|tree|blob|tag) (\d+)$/.exec(buf.subarray(0, Math.max(0, nul)).toString('latin1'));
    if (!m || Number(m[2]) !== buf.length - nul - 1)
      throw new PackFormatError(`loose object ${oid} has no valid header`);
    return { type: m[1] as ObjectType, data: buf.subarray(nul + 1) };
  }

  #packList(): Promise<Pack[]> {
    this.#packs ??= (async () => {
      const dir = join(this.gitdir, 'objects', 'pack');
      const names = await readdir(dir).catch(() => [] as string[]);
      const packs: Pack[] = [];
      // Newest packs are the likeliest to hold what a run reads; readdir order is arbitrary, so sort by name for a stable order.
      for (const n of names.sort()) {
        if (!n.endsWith('.idx') || !names.includes(n.replace(/\.idx$/, '.pack'))) continue;
        // An index that does not parse (cut short by a power loss before it was synced, in an
        // older version) hides its pack: its objects count as missing and are fetched again.
        const index = await readFile(join(dir, n))
          .then((b) => PackIndex.parse(b, n))
          .catch(() => undefined);
        if (index) packs.push({ name: n.replace(/\.idx$/, ''), index });
      }
      return packs;
    })();
    return this.#packs;
  }

  async #packed(p: Pack, offset: number, depth: number): Promise<GitObject> {
    if (depth > MAX_DELTA_CHAIN)
      throw new PackFormatError(
        `${p.name}: a delta chain longer than ${MAX_DELTA_CHAIN} (or a cycle) at byte ${offset}`,
      );
    const key = `${p.name}:${offset}`;
    const cached = this.#bases.get(key);
    if (cached) {
      // Least recently used goes first: refresh this one's place.
      this.#bases.delete(key);
      this.#bases.set(key, cached);
      return cached;
    }
    if (!p.file) {
      p.file = PackFile.open(join(this.gitdir, 'objects', 'pack', `${p.name}.pack`));
      p.file.catch(() => delete p.file);
    }
    const file = await p.file;
    const h = await readEntryHeader(file, offset);
    const { data } = await inflateAt(file, h.dataAt, h.size, file.size - 20, this.maxObjectBytes);
    if (h.baseOffset === undefined && h.baseOid === undefined) {
      const whole = { type: typeOf(h.code), data };
      // Read as the base of a delta: the next object of the chain's family likely needs it too.
      if (depth > 0) this.#remember(key, whole);
      return whole;
    }
    const base =
      h.baseOffset !== undefined
        ? await this.#packed(p, h.baseOffset, depth + 1)
        : await this.#read(h.baseOid!, depth + 1);
    const obj = { type: base.type, data: applyDelta(base.data, data, this.maxObjectBytes) };
    this.#remember(key, obj);
    return obj;
  }

  /** Keeps objects that were built from deltas: they are the likely bases of the next read. */
  #remember(key: string, obj: GitObject): void {
    if (obj.data.length > BASE_CACHE_BYTES / 4) return;
    // Evicts the least recently used: a walk over thousands of similar documents (a fleet's
    // status) keeps the bases its delta chains share instead of starting over when full.
    for (const [k, old] of this.#bases) {
      if (this.#baseBytes + obj.data.length <= BASE_CACHE_BYTES) break;
      this.#bases.delete(k);
      this.#baseBytes -= old.data.length;
    }
    this.#bases.set(key, obj);
    this.#baseBytes += obj.data.length;
  }
}

function typeOf(code: number): ObjectType {
  return (['commit', 'tree', 'blob', 'tag'] as const)[code - 1]!;
}

export function parseCommit(oid: string, data: Buffer): Commit {
  const text = data.toString('utf8');
  const split = text.indexOf('\n\n');
  const head = split < 0 ? text : text.slice(0, split);
  const tree = /^tree ([0-9a-f]{40})$/m.exec(head)?.[1];
  if (!tree) throw new PackFormatError(`commit ${oid} names no tree`);
  const parents = [...head.matchAll(/^parent ([0-9a-f]{40})$/gm)].map((m) => m[1]!);
  return { tree, parents, message: split < 0 ? '' : text.slice(split + 2) };
}

export function parseTree(oid: string, data: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    const nul = sp < 0 ? -1 : data.indexOf(0, sp);
    if (sp < 0 || nul < 0 || nul + 21 > data.length) throw new PackFormatError(`tree ${oid} is malformed at byte ${i}`);
    let mode = data.subarray(i, sp).toString('latin1');
    if (mode === '40000') mode = '040000';
    const type = mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob';
    entries.push({
      mode,
      path: data.subarray(sp + 1, nul).toString('utf8'),
      oid: data.subarray(nul + 1, nul + 21).toString('hex'),
      type,
    });
    i = nul + 21;
  }
  return entries;
}

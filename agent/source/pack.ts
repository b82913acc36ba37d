import { createHash } from 'node:crypto';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { open, type FileHandle } from '../files.js';

/**
 * Git's pack format, read and written by position in the file: a pack is never held in memory
 * whole. What is held at once is one object (and, while deltas are resolved, the bases on the
 * path to it), so memory is bounded by `maxObjectBytes`, not by the size of the pack.
 * (isomorphic-git reads a whole pack file into memory before it reads any object from it, and
 * while indexing holds about four times the pack.)
 *
 * Format: git's Documentation/gitformat-pack.txt (pack v2/v3, index v2).
 */

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';
const TYPE_NAMES: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
const TYPE_CODES: Record<ObjectType, number> = { commit: 1, tree: 2, blob: 3, tag: 4 };
const OFS_DELTA = 6;
const REF_DELTA = 7;

export interface GitObject {
  type: ObjectType;
  data: Buffer;
}

export interface PackLimits {
  /** The largest object (after inflating, and after applying a delta) a pack may hold. */
  maxObjectBytes: number;
  /** The most bytes indexing may inflate and rebuild in all: a pack of small deltas that each build a huge object ends here. */
  maxWorkBytes?: number;
}

/** A pack or index that is not what its format says; the message names the byte. */
export class PackFormatError extends Error {
  override name = 'PackFormatError';
}

/** An object or the work of indexing over the limits: cut off, never buffered. */
export class PackTooLargeError extends Error {
  readonly code = 'E_GIT_TOO_LARGE';
}

export function objectId(type: ObjectType, data: Buffer): string {
  return createHash('sha1').update(`${type} ${data.length}\0`).update(data).digest('hex');
}

/** Reads a pack file by position, through a read-ahead window (sequential reads cost one syscall per MiB). */
/**
 * How much one read of a pack file brings in: enough that reading entry after entry (indexing) is
 * a read call per many objects, small enough that reading objects at random offsets (a fleet's
 * status documents and their delta bases, all over a 5 MB pack) does not read a MiB per object.
 */
const WINDOW_BYTES = 16 * 1024;

export class PackFile {
  #window = Buffer.alloc(0);
  #windowAt = 0;
  private constructor(
    readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<PackFile> {
    const fh = await open(path, 'r');
    try {
      return new PackFile(fh, (await fh.stat()).size);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }

  /** `len` bytes from `at` (fewer at the end of the file). The buffer may share the window: copy to keep it. */
  async read(at: number, len: number): Promise<Buffer> {
    const end = Math.min(this.size, at + len);
    if (at >= end) return Buffer.alloc(0);
    if (at >= this.#windowAt && end <= this.#windowAt + this.#window.length)
      return this.#window.subarray(at - this.#windowAt, end - this.#windowAt);
    const want = Math.max(end - at, WINDOW_BYTES);
    const buf = Buffer.allocUnsafe(Math.min(want, this.size - at));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, at + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.#window = buf.subarray(0, got);
    this.#windowAt = at;
    return this.#window.subarray(0, end - at);
  }
}

/** One entry's header: its type code, its declared (inflated) size, where its zlib data starts and what a delta is based on. */
export interface EntryHeader {
  code: number;
  size: number;
  dataAt: number;
  baseOffset?: number;
  baseOid?: string;
}

export async function readEntryHeader(pack: PackFile, offset: number): Promise<EntryHeader> {
  const b = await pack.read(offset, 64);
  let i = 0;
  const byte = () => {
    if (i >= b.length) throw new PackFormatError(`pack entry at byte ${offset}: truncated header`);
    return b[i++]!;
  };
  let c = byte();
  const code = (c >> 4) & 7;
  let size = c & 15;
  let shift = 4;
  while (c & 0x80) {
    c = byte();
    if (shift > 49) throw new PackFormatError(`pack entry at byte ${offset}: size field too long`);
    size += (c & 0x7f) * 2 ** shift;
    shift += 7;
  }
  const header: EntryHeader = { code, size, dataAt: 0 };
  if (code === OFS_DELTA) {
    c = byte();
    let back = c & 0x7f;
    while (c & 0x80) {
      c = byte();
      back = (back + 1) * 128 + (c & 0x7f);
      if (back > offset) break;
    }
    if (back <= 0 || back > offset - 12)
      throw new PackFormatError(`pack entry at byte ${offset}: delta base offset points outside the pack`);
    header.baseOffset = offset - back;
  } else if (code === REF_DELTA) {
    if (i + 20 > b.length) throw new PackFormatError(`pack entry at byte ${offset}: truncated header`);
    header.baseOid = b.subarray(i, i + 20).toString('hex');
    i += 20;
  } else if (!TYPE_NAMES[code]) {
    throw new PackFormatError(`pack entry at byte ${offset}: unknown object type ${code}`);
  }
  header.dataAt = offset + i;
  return header;
}

/**
 * Inflates the zlib stream at `at`, which must give exactly `size` bytes; also returns how many
 * compressed bytes it took. The stream's length is not stored, so the read starts with what an
 * honest deflate of `size` bytes needs and doubles up to the end of the file.
 */
export async function inflateAt(
  pack: PackFile,
  at: number,
  size: number,
  end: number,
  limit: number,
): Promise<{ data: Buffer; consumed: number }> {
  if (size > limit)
    throw new PackTooLargeError(
      `an object at byte ${at} of the pack is ${size} bytes, more than the limit of ${limit} (source.maxPackSize)`,
    );
  let window = Math.min(end - at, size + (size >> 8) + 64);
  for (;;) {
    const input = await pack.read(at, window);
    try {
      // One output chunk of the object's size: zlib's default 16 KiB chunk per call is most of
      // the garbage when tens of thousands of small objects are inflated (a fleet read).
      const { buffer, engine } = inflateSync(input, {
        info: true,
        maxOutputLength: Math.max(size, 1),
        chunkSize: Math.min(Math.max(64, size + 1), 1 << 20),
      }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      if (buffer.length !== size)
        throw new PackFormatError(
          `pack entry data at byte ${at}: inflates to ${buffer.length} bytes, its header says ${size}`,
        );
      return { data: buffer, consumed: engine.bytesWritten };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'Z_BUF_ERROR' && window < end - at) {
        window = Math.min(end - at, window * 2);
        continue;
      }
      if (err instanceof PackFormatError) throw err;
      if (e.code === 'ERR_BUFFER_TOO_LARGE')
        throw new PackFormatError(
          `pack entry data at byte ${at}: inflates to more than the ${size} bytes its header says`,
        );
      throw new PackFormatError(
        `pack entry data at byte ${at}: ${e.code === 'Z_BUF_ERROR' ? 'truncated' : 'not valid zlib data'}`,
      );
    }
  }
}

function varint(buf: Buffer, at: { i: number }): number {
  let n = 0;
  let shift = 0;
  let c;
  do {
    if (at.i >= buf.length || shift > 49) throw new PackFormatError('delta: truncated size');
    c = buf[at.i++]!;
    n += (c & 0x7f) * 2 ** shift;
    shift += 7;
  } while (c & 0x80);
  return n;
}

/** Builds an object from its base and a delta (copy and insert instructions), checking every bound. */
export function applyDelta(base: Buffer, delta: Buffer, limit: number): Buffer {
  const at = { i: 0 };
  const baseSize = varint(delta, at);
  const size = varint(delta, at);
  if (baseSize !== base.length)
    throw new PackFormatError(`delta: made for a base of ${baseSize} bytes, the base has ${base.length}`);
  if (size > limit)
    throw new PackTooLargeError(
      `a delta builds an object of ${size} bytes, more than the limit of ${limit} (source.maxPackSize)`,
    );
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  while (at.i < delta.length) {
    const op = delta[at.i++]!;
    if (op & 0x80) {
      let off = 0;
      let len = 0;
      for (let k = 0; k < 4; k++) if (op & (1 << k)) off += delta[at.i++]! * 2 ** (8 * k);
      for (let k = 0; k < 3; k++) if (op & (0x10 << k)) len += delta[at.i++]! * 2 ** (8 * k);
      if (at.i > delta.length) throw new PackFormatError('delta: truncated copy instruction');
      if (len === 0) len = 0x10000;
      if (off + len > base.length || o + len > size)
        throw new PackFormatError('delta: copy outside the base or the result');
      base.copy(out, o, off, off + len);
      o += len;
    } else if (op !== 0) {
      if (at.i + op > delta.length || o + op > size) throw new PackFormatError('delta: insert past the end');
      delta.copy(out, o, at.i, at.i + op);
      at.i += op;
      o += op;
    } else {
      throw new PackFormatError('delta: reserved instruction 0');
    }
  }
  if (o !== size) throw new PackFormatError(`delta: built ${o} bytes of ${size}`);
  return out;
}

interface IndexEntry {
  offset: number;
  crc: number;
  oid?: string;
  type?: ObjectType;
  code: number;
  dataAt: number;
  size: number;
  baseOffset?: number;
  baseOid?: string;
}

export interface IndexedPack {
  /** The pack's own SHA-1 (its trailer), which names it: pack-<sha>.pack. */
  sha: string;
  objects: number;
  /** The index file (v2) for the pack. */
  idx: Buffer;
}

/**
 * Reads a pack from disk and builds its index: checks the trailer, inflates every entry once to
 * find where it ends, and resolves deltas from each base down (the bases on the current path
 * are kept while they fit in `maxObjectBytes`, and rebuilt from their chain when not). Any entry
 * that is not what it claims, a delta whose base is not in the pack, a cycle, or bytes after the
 * last entry is a PackFormatError naming the byte.
 */
export async function indexPack(
  path: string,
  limits: PackLimits,
  thinBases?: (oid: string) => Promise<GitObject>,
  onObject?: ObjectSink,
): Promise<IndexedPack> {
  const pack = await PackFile.open(path);
  let missing: string[];
  try {
    const result = await indexOpenPack(pack, limits, thinBases !== undefined, onObject);
    if (!Array.isArray(result)) return result;
    missing = result;
  } finally {
    await pack.close();
  }
  // A thin pack (what a fetch with `have` lines brings): its deltas build on objects this store
  // already has. They are appended whole, as `git index-pack --fix-thin` does, so that every
  // pack stands on its own and a compaction never strands a delta.
  await appendObjects(path, missing, thinBases!);
  return indexPack(path, limits, undefined, onObject);
}

/**
 * Called with every object as indexing comes to it whole (a delta once resolved), for a caller
 * that reads all of a pack's objects right after the fetch (readFleet): they are then never
 * read back from the file. What it keeps is bounded by the pack's work limit.
 */
export type ObjectSink = (oid: string, obj: GitObject) => void;

/** Appends whole objects to a pack file and rewrites its object count and trailer. */
async function appendObjects(path: string, oids: string[], read: (oid: string) => Promise<GitObject>): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(12);
    await fh.read(head, 0, 12, 0);
    let at = size - 20;
    for (const oid of oids) {
      const { type, data } = await read(oid);
      const raw = Buffer.concat([entryHeader(TYPE_CODES[type], data.length), deflateSync(data)]);
      await fh.write(raw, 0, raw.length, at);
      at += raw.length;
    }
    head.writeUInt32BE(head.readUInt32BE(8) + oids.length, 8);
    await fh.write(head, 0, 12, 0);
    await fh.truncate(at);
    const hash = createHash('sha1');
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; pos < at;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, at - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    await fh.write(hash.digest(), 0, 20, at);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function indexOpenPack(
  pack: PackFile,
  limits: PackLimits,
  thin: boolean,
  onObject?: ObjectSink,
): Promise<IndexedPack | string[]> {
  const { maxObjectBytes } = limits;
  const maxWork = limits.maxWorkBytes ?? 64 * maxObjectBytes;
  const count = await checkHeader(pack);
  const sha = await checkTrailer(pack);
  let work = 0;
  const spend = (n: number) => {
    work += n;
    if (work > maxWork)
      throw new PackTooLargeError(
        `the pack expands to more than ${maxWork} bytes (64 times source.maxPackSize); cut off`,
      );
  };
  const { entries, byOffset } = await readEntries(pack, count, maxObjectBytes, spend, onObject);
  const unresolved = await resolveDeltas(pack, entries, byOffset, maxObjectBytes, spend, onObject);
  if (unresolved.length > 0) {
    const inPack = new Set(entries.map((e) => e.oid).filter(Boolean));
    const missing = [
      ...new Set(
        unresolved.map((e) => e.baseOid).filter((oid): oid is string => oid !== undefined && !inPack.has(oid)),
      ),
    ];
    if (thin && missing.length > 0) return missing;
    const lost = unresolved[0]!;
    throw new PackFormatError(
      `pack entry at byte ${lost.offset}: its delta base ${lost.baseOid ?? `at byte ${lost.baseOffset}`} is not in the pack (or the deltas form a cycle)`,
    );
  }
  return {
    sha,
    objects: count,
    idx: writeIndex(entries as Array<IndexEntry & { oid: string }>, Buffer.from(sha, 'hex')),
  };
}

/** The PACK header: its version, and an object count the file can hold. Returns the count. */
async function checkHeader(pack: PackFile): Promise<number> {
  if (pack.size < 32) throw new PackFormatError(`the pack is ${pack.size} bytes, too short to be one`);
  const head = Buffer.from(await pack.read(0, 12));
  const version = head.readUInt32BE(4);
  if (head.subarray(0, 4).toString('latin1') !== 'PACK' || (version !== 2 && version !== 3))
    throw new PackFormatError('the answer is not a Git pack (no PACK v2/v3 header)');
  const count = head.readUInt32BE(8);
  // An entry takes at least 2 bytes of header and 8 of zlib data.
  if (count > (pack.size - 20) / 10)
    throw new PackFormatError(`the pack claims ${count} objects, more than its ${pack.size} bytes can hold`);
  return count;
}

/** Every entry in order: where it is, its CRC, and for a whole object its id. Deltas wait. */
async function readEntries(
  pack: PackFile,
  count: number,
  maxObjectBytes: number,
  spend: (n: number) => void,
  onObject?: ObjectSink,
): Promise<{ entries: IndexEntry[]; byOffset: Map<number, IndexEntry> }> {
  const end = pack.size - 20;
  const entries: IndexEntry[] = [];
  const byOffset = new Map<number, IndexEntry>();
  let at = 12;
  for (let n = 0; n < count; n++) {
    if (at >= end) throw new PackFormatError(`the pack ends after ${n} of its ${count} objects`);
    const h = await readEntryHeader(pack, at);
    spend(h.size);
    const { data, consumed } = await inflateAt(pack, h.dataAt, h.size, end, maxObjectBytes);
    const next = h.dataAt + consumed;
    const e: IndexEntry = {
      offset: at,
      crc: crc32(await pack.read(at, next - at)),
      code: h.code,
      dataAt: h.dataAt,
      size: h.size,
    };
    if (h.baseOffset !== undefined) {
      if (!byOffset.has(h.baseOffset))
        throw new PackFormatError(
          `pack entry at byte ${at}: its delta base at byte ${h.baseOffset} is not the start of an entry`,
        );
      e.baseOffset = h.baseOffset;
    } else if (h.baseOid !== undefined) {
      e.baseOid = h.baseOid;
    } else {
      e.type = TYPE_NAMES[h.code]!;
      e.oid = objectId(e.type, data);
      onObject?.(e.oid, { type: e.type, data });
    }
    entries.push(e);
    byOffset.set(at, e);
    at = next;
  }
  if (at !== end) throw new PackFormatError(`the pack has ${end - at} bytes after its last object`);
  return { entries, byOffset };
}

async function checkTrailer(pack: PackFile): Promise<string> {
  const hash = createHash('sha1');
  const end = pack.size - 20;
  for (let at = 0; at < end; at += 1024 * 1024) hash.update(await pack.read(at, Math.min(1024 * 1024, end - at)));
  const sum = hash.digest();
  const trailer = await pack.read(end, 20);
  if (!sum.equals(trailer))
    throw new PackFormatError('the pack checksum does not match its content (corrupt or cut short)');
  return sum.toString('hex');
}

/** Resolves every delta reachable from a whole object in the pack; returns the ones that are not. */
async function resolveDeltas(
  pack: PackFile,
  entries: IndexEntry[],
  byOffset: Map<number, IndexEntry>,
  limit: number,
  spend: (n: number) => void,
  onObject?: ObjectSink,
): Promise<IndexEntry[]> {
  const kidsByOffset = new Map<number, IndexEntry[]>();
  const kidsByOid = new Map<string, IndexEntry[]>();
  for (const e of entries) {
    if (e.baseOffset !== undefined) push(kidsByOffset, e.baseOffset, e);
    else if (e.baseOid !== undefined) push(kidsByOid, e.baseOid, e);
  }
  const kidsOf = (e: IndexEntry) => [...(kidsByOffset.get(e.offset) ?? []), ...(kidsByOid.get(e.oid!) ?? [])];
  const byOid = new Map<string, IndexEntry>();
  for (const e of entries) if (e.oid) byOid.set(e.oid, e);
  const inflate = async (e: IndexEntry) => (await inflateAt(pack, e.dataAt, e.size, pack.size - 20, limit)).data;
  const rebuild = (e: IndexEntry) => rebuildEntry(e, byOffset, byOid, inflate, limit);

  for (const root of entries) {
    if (root.code === OFS_DELTA || root.code === REF_DELTA) continue;
    const rootKids = kidsOf(root);
    if (rootKids.length === 0) continue;
    const stack: Array<{ e: IndexEntry; data?: Buffer; kids: IndexEntry[]; next: number }> = [
      { e: root, data: await inflate(root), kids: rootKids, next: 0 },
    ];
    let held = stack[0]!.data!.length;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next >= top.kids.length) {
        held -= top.data?.length ?? 0;
        stack.pop();
        continue;
      }
      const kid = top.kids[top.next++]!;
      const base = top.data ?? (await rebuild(top.e));
      const delta = await inflate(kid);
      const data = applyDelta(base, delta, limit);
      spend(data.length);
      kid.type = top.e.type!;
      kid.oid = objectId(kid.type, data);
      byOid.set(kid.oid, kid);
      onObject?.(kid.oid, { type: kid.type, data });
      const kids = kidsOf(kid);
      if (kids.length === 0) continue;
      stack.push({ e: kid, data, kids, next: 0 });
      held += data.length;
      // Past the budget, forget the bases nearest the root first; they are rebuilt if needed again.
      for (let i = 0; held > limit && i < stack.length - 1; i++) {
        held -= stack[i]!.data?.length ?? 0;
        delete stack[i]!.data;
      }
    }
  }
  return entries.filter((e) => !e.oid);
}

/** An entry's content from scratch: its chain down to a whole object, then each delta up. */
async function rebuildEntry(
  e: IndexEntry,
  byOffset: ReadonlyMap<number, IndexEntry>,
  byOid: ReadonlyMap<string, IndexEntry>,
  inflate: (e: IndexEntry) => Promise<Buffer>,
  limit: number,
): Promise<Buffer> {
  const chain: IndexEntry[] = [];
  let cur = e;
  while (cur.code === OFS_DELTA || cur.code === REF_DELTA) {
    chain.push(cur);
    cur = cur.baseOffset !== undefined ? byOffset.get(cur.baseOffset)! : byOid.get(cur.baseOid!)!;
  }
  let data = await inflate(cur);
  for (const d of chain.reverse()) data = applyDelta(data, await inflate(d), limit);
  return data;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** An index v2 for the entries (any order): fan-out, names, CRCs, offsets, large offsets, checksums. */
export function writeIndex(entries: Array<{ oid: string; offset: number; crc: number }>, packSha: Buffer): Buffer {
  const sorted = [...entries].sort((a, b) => (a.oid < b.oid ? -1 : a.oid > b.oid ? 1 : 0));
  const n = sorted.length;
  const large = sorted.filter((e) => e.offset >= 0x80000000);
  const buf = Buffer.alloc(8 + 256 * 4 + n * 28 + large.length * 8 + 40);
  buf.write('\xfftOc', 0, 'latin1');
  buf.writeUInt32BE(2, 4);
  const fanout = new Array<number>(256).fill(0);
  for (const e of sorted) fanout[parseInt(e.oid.slice(0, 2), 16)]!++;
  let sum = 0;
  for (let i = 0; i < 256; i++) buf.writeUInt32BE((sum += fanout[i]!), 8 + i * 4);
  const names = 8 + 1024;
  const crcs = names + n * 20;
  const offsets = crcs + n * 4;
  const larges = offsets + n * 4;
  let li = 0;
  sorted.forEach((e, i) => {
    buf.write(e.oid, names + i * 20, 'hex');
    buf.writeUInt32BE(e.crc >>> 0, crcs + i * 4);
    if (e.offset < 0x80000000) buf.writeUInt32BE(e.offset, offsets + i * 4);
    else {
      buf.writeUInt32BE((0x80000000 | li) >>> 0, offsets + i * 4);
      buf.writeBigUInt64BE(BigInt(e.offset), larges + li++ * 8);
    }
  });
  const tail = larges + large.length * 8;
  packSha.copy(buf, tail);
  createHash('sha1')
    .update(buf.subarray(0, tail + 20))
    .digest()
    .copy(buf, tail + 20);
  return buf;
}

/** A parsed index v2: looks up an object's offset in its pack by binary search. */
export class PackIndex {
  private constructor(
    readonly buf: Buffer,
    readonly count: number,
  ) {}

  static parse(buf: Buffer, name: string): PackIndex {
    if (buf.length < 8 + 1024 + 40 || buf.readUInt32BE(0) !== 0xff744f63 || buf.readUInt32BE(4) !== 2)
      throw new PackFormatError(`${name}: not a pack index v2`);
    const count = buf.readUInt32BE(8 + 255 * 4);
    if (buf.length < 8 + 1024 + count * 28 + 40)
      throw new PackFormatError(`${name}: shorter than its ${count} objects need`);
    return new PackIndex(buf, count);
  }

  offsetOf(oid: string): number | undefined {
    const key = Buffer.from(oid, 'hex');
    if (key.length !== 20) return undefined;
    const first = key[0]!;
    let lo = first === 0 ? 0 : this.buf.readUInt32BE(8 + (first - 1) * 4);
    let hi = this.buf.readUInt32BE(8 + first * 4);
    const names = 8 + 1024;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const cmp = this.buf.compare(key, 0, 20, names + mid * 20, names + mid * 20 + 20);
      if (cmp === 0) return this.#offset(mid);
      if (cmp > 0) hi = mid;
      else lo = mid + 1;
    }
    return undefined;
  }

  #offset(i: number): number {
    const at = 8 + 1024 + this.count * 24 + i * 4;
    const v = this.buf.readUInt32BE(at);
    if (!(v & 0x80000000)) return v;
    return Number(this.buf.readBigUInt64BE(8 + 1024 + this.count * 28 + (v & 0x7fffffff) * 8));
  }
}

/**
 * Writes a pack of `oids` (no deltas) to `path`, reading each object through `read` one at a
 * time, and returns its sha and index.
 */
export async function writePack(
  path: string,
  oids: string[],
  read: (oid: string) => Promise<GitObject>,
): Promise<IndexedPack> {
  const fh = await open(path, 'w');
  try {
    const hash = createHash('sha1');
    const header = Buffer.alloc(12);
    header.write('PACK', 0, 'latin1');
    header.writeUInt32BE(2, 4);
    header.writeUInt32BE(oids.length, 8);
    let at = 0;
    const write = async (b: Buffer) => {
      hash.update(b);
      await fh.write(b, 0, b.length, at);
      at += b.length;
    };
    await write(header);
    const entries: Array<{ oid: string; offset: number; crc: number }> = [];
    for (const oid of oids) {
      const { type, data } = await read(oid);
      const raw = Buffer.concat([entryHeader(TYPE_CODES[type], data.length), deflateSync(data)]);
      entries.push({ oid, offset: at, crc: crc32(raw) });
      await write(raw);
    }
    const sha = hash.digest();
    await fh.write(sha, 0, 20, at);
    await fh.sync();
    return { sha: sha.toString('hex'), objects: oids.length, idx: writeIndex(entries, sha) };
  } finally {
    await fh.close();
  }
}

/**
 * A pack of `oids` (no deltas) in memory, for a push: a status report is a few small objects.
 * (isomorphic-git's packObjects deflates through CompressionStream and Response, which loads
 * node's fetch implementation and its WebAssembly parser: 23 MiB of RSS measured, for one push.)
 */
export async function packBuffer(oids: string[], read: (oid: string) => Promise<GitObject>): Promise<Buffer> {
  const header = Buffer.alloc(12);
  header.write('PACK', 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(oids.length, 8);
  const parts: Buffer[] = [header];
  for (const oid of oids) {
    const { type, data } = await read(oid);
    parts.push(entryHeader(TYPE_CODES[type], data.length), deflateSync(data));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

/** A pack entry's header: the type code and the size, 4 bits then 7 per byte. */
export function entryHeader(code: number, size: number): Buffer {
  const bytes: number[] = [];
  let c = (code << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(c | 0x80);
    c = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(c);
  return Buffer.from(bytes);
}

import type { Stats } from 'node:fs';
import { open } from '../files.js';

/**
 * How long a file must have stood still before its digest is trusted from its stat alone. The
 * kernel stamps ctime from a coarse clock (a few ms), so a write in the same tick as the read
 * could leave the stat unchanged; a file changed this recently is read again next time (git's
 * "racy clean" rule). Two seconds also covers a clock stepped back a little.
 */
export const SETTLE_MS = 2000;

/** A file is read in pieces of at most this size: a huge file at a managed path costs no more memory. */
export const CHUNK_BYTES = 1024 * 1024;

/** A digest fed in pieces (HMAC-SHA-256 under the host's key, Fingerprint.hasher). */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): string;
}

/**
 * The digest of each regular file an observe pass looks at, read again only when the file may
 * have changed: another inode, size, mtime or ctime than when it was read, or a ctime within
 * SETTLE_MS of that read. Any write, truncate, chmod, chown, utimes or rename over the path moves
 * ctime or the inode, and ctime cannot be set from user space, so drift of every kind is still seen
 * on the next poll; an idle poll costs one lstat per file instead of a read and a hash. Only
 * digests are kept (File content is fingerprinted with the host's key), never content. Bounded:
 * what `pass()` does not see again in the next pass is dropped.
 */
export class ContentCache {
  #kept = new Map<string, Entry>();
  #seen = new Map<string, Entry>();

  constructor(private readonly hasher: () => Hasher) {}

  /** Starts an observe pass: forgets the paths the last whole pass did not look at. */
  pass(): void {
    this.#kept = this.#seen;
    this.#seen = new Map();
  }

  /** The digest of `path`, whose lstat (a regular file) was taken at `statAt` (Date.now()). */
  async of(path: string, st: Stats, statAt: number): Promise<string> {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    const hit = this.#seen.get(path) ?? this.#kept.get(path);
    if (hit?.key === key && hit.settled) {
      this.#seen.set(path, hit);
      return hit.digest;
    }
    const digest = await this.#read(path, st.size);
    this.#seen.set(path, { key, digest, settled: st.ctimeMs <= statAt - SETTLE_MS });
    return digest;
  }

  /**
   * The digest of the first `size` bytes (the size its lstat gave): a file that grows or shrinks
   * while it is read has a new ctime, so the next pass reads it again.
   */
  async #read(path: string, size: number): Promise<string> {
    const hasher = this.hasher();
    const file = await open(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(Math.min(Math.max(size, 1), CHUNK_BYTES));
      for (let at = 0; at < size;) {
        const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, size - at), at);
        if (bytesRead === 0) break;
        hasher.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
    } finally {
      await file.close();
    }
    return hasher.digest();
  }
}

interface Entry {
  key: string;
  digest: string;
  /** The file had not changed for SETTLE_MS when it was read: its stat alone may vouch for it. */
  settled: boolean;
}

// The promise-returning file calls the agent makes, over node:fs's callback API. Node 26's
// node:fs/promises loads readline and the REPL's history with it (for FileHandle.readLines):
// 1.4 MiB of RSS that the idle daemon held for nothing (bench/README.md, issue 15).
// test/layers.test.ts keeps node:fs/promises out of agent/.
import {
  access as accessCb,
  close,
  fchmod,
  fchown,
  fstat,
  fsync,
  ftruncate,
  link as linkCb,
  lstat as lstatCb,
  mkdir as mkdirCb,
  mkdtemp as mkdtempCb,
  open as openCb,
  read,
  readdir as readdirCb,
  readFile as readFileCb,
  rename as renameCb,
  rm as rmCb,
  stat as statCb,
  write,
  writeFile as writeFileCb,
  type Stats,
} from 'node:fs';
import type * as P from 'node:fs/promises';
import { promisify } from 'node:util';

export { constants } from 'node:fs';
export const access = promisify(accessCb) as typeof P.access;
export const link = promisify(linkCb) as typeof P.link;
export const lstat = promisify(lstatCb) as typeof P.lstat;
export const mkdir = promisify(mkdirCb) as typeof P.mkdir;
export const mkdtemp = promisify(mkdtempCb) as typeof P.mkdtemp;
export const readdir = promisify(readdirCb) as typeof P.readdir;
export const readFile = promisify(readFileCb) as typeof P.readFile;
export const rename = promisify(renameCb) as typeof P.rename;
export const rm = promisify(rmCb) as typeof P.rm;
export const stat = promisify(statCb) as typeof P.stat;
export const writeFile = promisify(writeFileCb) as typeof P.writeFile;

/** One call on a file descriptor, as a promise of the callback's first result. */
function call<T>(run: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** An open file: the part of node:fs/promises' FileHandle the agent uses. */
export class FileHandle {
  constructor(readonly fd: number) {}

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return call<number>((done) => read(this.fd, buffer, offset, length, position, done)).then((bytesRead) => ({
      bytesRead,
    }));
  }

  /** Writes all of `length` bytes, at `position` (or where the file's offset is), however many calls it takes. */
  async write(
    data: Uint8Array,
    offset = 0,
    length = data.length - offset,
    position: number | null = null,
  ): Promise<void> {
    while (length > 0) {
      const n = await call<number>((done) => write(this.fd, data, offset, length, position, done));
      if (n === 0) throw Object.assign(new Error('write: no byte written'), { code: 'EIO' });
      offset += n;
      length -= n;
      if (position !== null) position += n;
    }
  }

  /** Writes all of `data` where the file's offset is (at its end, for a file opened with 'a'). */
  writeFile(data: string | Uint8Array): Promise<void> {
    return this.write(typeof data === 'string' ? Buffer.from(data) : data);
  }

  appendFile(data: string | Uint8Array): Promise<void> {
    return this.writeFile(data);
  }

  stat(): Promise<Stats> {
    return call<Stats>((done) => fstat(this.fd, done));
  }

  sync(): Promise<void> {
    return call<void>((done) => fsync(this.fd, done));
  }

  truncate(length: number): Promise<void> {
    return call<void>((done) => ftruncate(this.fd, length, done));
  }

  chmod(mode: number): Promise<void> {
    return call<void>((done) => fchmod(this.fd, mode, done));
  }

  chown(uid: number, gid: number): Promise<void> {
    return call<void>((done) => fchown(this.fd, uid, gid, done));
  }

  close(): Promise<void> {
    return call<void>((done) => close(this.fd, done));
  }
}

export async function open(path: string, flags: string, mode?: number): Promise<FileHandle> {
  return new FileHandle(await call<number>((done) => openCb(path, flags, mode, done)));
}

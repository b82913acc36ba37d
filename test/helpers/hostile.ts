import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { deflateSync } from 'node:zlib';
import { entryHeader } from '../../agent/source/pack.js';

/**
 * Git servers that misbehave on purpose, on loopback: what a real Git server cannot be made to
 * do (an answer that never ends, a pack of junk). Every test that uses one says which fault.
 */
export type Fault =
  /** The ls-refs answer streams pkt-lines without end, as fast as the socket takes them. */
  | 'endless-refs'
  /** The ls-refs answer drips one byte every 50 ms and never ends: only a deadline stops it. */
  | 'drip-refs'
  /** The branch exists; the fetch answer is a well-formed start, then side-band junk without end. */
  | 'junk-pack'
  /**
   * The branch exists; the fetch answer is a valid pack of one blob that inflates to 1 GiB of
   * zeros (1 MiB on the wire): a zip bomb. git itself never sends a blob larger than the pack
   * limit, so only a fake can.
   */
  | 'bomb-pack';

export interface HostileServer {
  url: string;
  /** Bytes written to clients so far. */
  sent(): number;
  stop(): Promise<void>;
}

const pkt = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0')), b]);
};
export const FAKE_OID = 'c0ffee'.padEnd(40, '0');

export async function startHostileServer(fault: Fault, opts: { limitBytes?: number } = {}): Promise<HostileServer> {
  let sent = 0;
  const limit = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  const sockets = new Set<import('node:net').Socket>();
  const pump = (res: ServerResponse, chunk: Buffer) => {
    const more = () => {
      while (!res.destroyed && sent < limit) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.endsWith('/info/refs')) {
        // v1 advertisement of one branch (isomorphic-git's fetch starts here)
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
        res.end(
          Buffer.concat([
            pkt('# service=git-upload-pack\n'),
            Buffer.from('0000'),
            pkt(`${FAKE_OID} refs/heads/main\0side-band-64k shallow ofs-delta\n`),
            Buffer.from('0000'),
          ]),
        );
        return;
      }
      if (body.includes('command=ls-refs')) {
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result' });
        if (fault === 'endless-refs') return pump(res, pkt(`${'f'.repeat(40)} refs/heads/x${'y'.repeat(900)}\n`));
        if (fault === 'drip-refs') {
          const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : ((sent += 1), res.write('0'))), 50);
          return;
        }
        res.end(Buffer.concat([pkt(`${FAKE_OID} refs/heads/main\n`), Buffer.from('0000')]));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result' });
      if (fault === 'bomb-pack') {
        res.end(Buffer.concat([pkt('packfile\n'), ...sideBand(zipBomb()), Buffer.from('0000')]));
        return;
      }
      if (body.includes('command=fetch')) {
        // Protocol v2: the packfile section, then junk on the pack band.
        res.write(
          Buffer.concat([
            pkt('packfile\n'),
            pkt(Buffer.concat([Buffer.from([1]), Buffer.from('PACK\0\0\0\x02\0\0\0\x05', 'latin1')])),
          ]),
        );
        return pump(res, pkt(Buffer.concat([Buffer.from([1]), Buffer.alloc(65515, 0x5a)])));
      }
      // The v1 fetch: a shallow answer, NAK, then junk on the pack band.
      res.write(
        Buffer.concat([
          pkt(`shallow ${FAKE_OID}\n`),
          Buffer.from('0000'),
          pkt('NAK\n'),
          pkt(Buffer.concat([Buffer.from([1]), Buffer.from('PACK\0\0\0\x02\0\0\0\x05', 'latin1')])),
        ]),
      );
      pump(res, pkt(Buffer.concat([Buffer.from([1]), Buffer.alloc(65515, 0x5a)])));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/fleet.git`,
    sent: () => sent,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A pack of one blob of 64 MiB of zeros, deflated (65 KiB), with a correct checksum. */
function zipBomb(): Buffer {
  const size = 64 * 1024 * 1024;
  const header = Buffer.from('PACK\0\0\0\x02\0\0\0\x01', 'latin1');
  const body = Buffer.concat([header, entryHeader(3, size), deflateSync(Buffer.alloc(size))]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

/** Data on side-band 1, in packets of at most 65515 bytes. */
function sideBand(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += 65515)
    out.push(pkt(Buffer.concat([Buffer.from([1]), data.subarray(at, at + 65515)])));
  return out;
}

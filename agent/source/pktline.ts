/**
 * Git's pkt-line framing (gitprotocol-common): a 4-hex-digit length that counts itself, then
 * the payload; 0000 is a flush, 0001 a delimiter, 0002 a response end.
 */

export const FLUSH = '0000';
export const DELIM = '0001';
/** The longest packet the protocol allows (LARGE_PACKET_MAX). */
const MAX_PKT = 65520;

export function pkt(s: string): string {
  return (Buffer.byteLength(s) + 4).toString(16).padStart(4, '0') + s;
}

/** Splits a buffered pkt-line stream up to the first flush packet; undefined when it is not one. */
export function parsePktLines(buf: Buffer): string[] | undefined {
  const lines: string[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = parseInt(buf.subarray(at, at + 4).toString('ascii'), 16);
    if (Number.isNaN(len)) return undefined;
    if (len === 0) return lines;
    if (len < 4 || at + len > buf.length) return undefined;
    lines.push(
      buf
        .subarray(at + 4, at + len)
        .toString('utf8')
        .replace(/\n$/, ''),
    );
    at += len;
  }
  return undefined;
}

/**
 * Every packet of a buffered stream with its byte range (a flush packet has empty text), up to
 * the last whole packet; undefined when a length is not hex, is 1 to 3 (no delimiter or
 * response-end here: this is for v1 advertisements), or runs past the end.
 */
export function packetRanges(buf: Buffer): Array<{ start: number; end: number; text: string }> | undefined {
  const out: Array<{ start: number; end: number; text: string }> = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = parseInt(buf.subarray(at, at + 4).toString('ascii'), 16);
    const end = at + Math.max(len, 4);
    if (Number.isNaN(len) || (len > 0 && len < 4) || end > buf.length) return undefined;
    out.push({ start: at, end, text: len === 0 ? '' : buf.subarray(at + 4, end).toString('latin1') });
    at = end;
  }
  return out;
}

/** A pkt-line stream that is not one: the message says what was found. */
export class ProtocolError extends Error {
  readonly code = 'E_GIT_PROTOCOL';
}

export type Packet = { kind: 'data'; payload: Buffer } | { kind: 'flush' | 'delim' | 'end' };

/**
 * Packets from a byte stream as they complete. At most one packet (64 KiB) is held between
 * chunks, so a stream of any length is read in bounded memory.
 */
export async function* packets(body: AsyncIterable<Uint8Array>): AsyncGenerator<Packet> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 4) {
      const hex = pending.subarray(at, at + 4).toString('latin1');
      const len = /^[0-9a-f]{4}$/.test(hex) ? parseInt(hex, 16) : NaN;
      if (Number.isNaN(len)) throw new ProtocolError(`not a pkt-line stream: ${JSON.stringify(hex)}`);
      if (len < 4) {
        if (len === 3) throw new ProtocolError('pkt-line of length 3');
        yield { kind: len === 0 ? 'flush' : len === 1 ? 'delim' : 'end' };
        at += 4;
        continue;
      }
      if (len > MAX_PKT) throw new ProtocolError(`pkt-line of ${len} bytes, more than ${MAX_PKT}`);
      if (pending.length - at < len) break;
      yield { kind: 'data', payload: pending.subarray(at + 4, at + len) };
      at += len;
    }
    pending = pending.subarray(at);
  }
  if (pending.length > 0) throw new ProtocolError('the answer ends inside a pkt-line');
}

export interface FetchAnswer {
  shallow: string[];
  unshallow: string[];
  packBytes: number;
}

/**
 * Reads a protocol-v2 fetch answer: its sections (shallow-info, acknowledgments, wanted-refs,
 * packfile) up to the final flush. The pack's side-band data goes to `write` as it arrives;
 * progress (band 2) is dropped; band 3 and an ERR line are the server's error, quoted (shortened).
 */
export async function readFetchAnswer(
  body: AsyncIterable<Uint8Array>,
  write: (data: Buffer) => Promise<void>,
): Promise<FetchAnswer> {
  const answer: FetchAnswer = { shallow: [], unshallow: [], packBytes: 0 };
  let section = '';
  for await (const p of packets(body)) {
    if (p.kind === 'flush' || p.kind === 'end') return answer;
    if (p.kind !== 'data') {
      section = '';
      continue;
    }
    if (section === 'packfile') {
      const band = p.payload[0];
      if (band === 1) {
        answer.packBytes += p.payload.length - 1;
        await write(p.payload.subarray(1));
      } else if (band === 3) throw new ProtocolError(`the server stopped the fetch: ${quote(p.payload.subarray(1))}`);
      else if (band !== 2) throw new ProtocolError(`side-band packet on band ${band}`);
      continue;
    }
    const line = p.payload.toString('utf8').replace(/\n$/, '');
    if (line.startsWith('ERR '))
      throw new ProtocolError(`the server refused the fetch: ${quote(p.payload.subarray(4))}`);
    if (section === '') {
      if (!['shallow-info', 'acknowledgments', 'wanted-refs', 'packfile-uris', 'packfile'].includes(line))
        throw new ProtocolError(`unexpected section ${quote(p.payload)} in the fetch answer`);
      section = line;
    } else if (section === 'shallow-info') {
      const m = /^(shallow|unshallow) ([0-9a-f]{40})$/.exec(line);
      if (!m) throw new ProtocolError(`bad shallow-info line ${quote(p.payload)}`);
      (m[1] === 'shallow' ? answer.shallow : answer.unshallow).push(m[2]!);
    }
  }
  throw new ProtocolError('the fetch answer ended before its final flush packet (cut short)');
}

/** Server text for a message: printable ASCII only, at most 200 characters. */
function quote(b: Buffer): string {
  const s = b
    .toString('utf8')
    .replace(/\n$/, '')
    .replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

/** Reads a body to its end and drops it (so the socket is released). */
export async function drain(body: AsyncIterable<Uint8Array> | undefined): Promise<void> {
  if (!body) return;
  try {
    for await (const _ of body) void _;
  } catch {
    // the error is reported by the caller from the status code
  }
}

import { agentVersion } from '../version.js';
import { DELIM, FLUSH, packets, parsePktLines, pkt, ProtocolError } from './pktline.js';

/**
 * Git protocol v0 behind the v2 requests GitRepo makes, for an SSH server that does not pass
 * GIT_PROTOCOL on (a plain sshd without `AcceptEnv GIT_PROTOCOL`, where git-upload-pack falls
 * back to v0; gitprotocol-pack). Only what GitRepo asks: `ls-refs` is answered from the ref
 * advertisement, and `fetch` is rewritten as v0 wants/deepen/haves with its answer rewritten as
 * the v2 sections readFetchAnswer reads.
 */

/** A v0 advertisement (pkt-line texts up to the flush): the refs and the server's capabilities. */
export interface V0Advertisement {
  refs: Array<{ oid: string; ref: string }>;
  caps: Set<string>;
}

export function readV0Advertisement(lines: readonly string[]): V0Advertisement {
  const refs: V0Advertisement['refs'] = [];
  let caps = new Set<string>();
  lines.forEach((line, i) => {
    if (/^shallow [0-9a-f]{40}$/.test(line)) return; // the server's own repo is shallow: not a ref
    const [head, capText] = line.split('\0');
    if (i === 0 && capText !== undefined) caps = new Set(capText.trim().split(' ').filter(Boolean));
    const m = /^([0-9a-f]{40}) (\S+)$/.exec(head!.trim());
    if (!m) throw new ProtocolError(`not a ref advertisement line: ${JSON.stringify(head!.slice(0, 60))}`);
    if (m[2] !== 'capabilities^{}' && !m[2]!.endsWith('^{}')) refs.push({ oid: m[1]!, ref: m[2]! });
  });
  return { refs, caps };
}

/** The v2 request's command and its argument lines (after the delimiter). */
function v2Request(body: Buffer): { command: string; args: string[] } {
  const text = body.toString('utf8');
  const at = text.indexOf(DELIM);
  const head = at < 0 ? [] : (parsePktLines(Buffer.from(text.slice(0, at) + FLUSH)) ?? []);
  const args = at < 0 ? [] : (parsePktLines(Buffer.from(text.slice(at + 4))) ?? []);
  const command = head.find((l) => l.startsWith('command='))?.slice('command='.length) ?? '';
  return { command, args };
}

export const v2Command = (body: Buffer): string => v2Request(body).command;

/** ls-refs answered from the advertisement: `<oid> <ref>` for each ref under a ref-prefix, then a flush. */
export function lsRefsAnswer(body: Buffer, ad: V0Advertisement): Buffer {
  const prefixes = v2Request(body)
    .args.filter((l) => l.startsWith('ref-prefix '))
    .map((l) => l.slice('ref-prefix '.length));
  const refs = ad.refs.filter((r) => prefixes.length === 0 || prefixes.some((p) => r.ref.startsWith(p)));
  return Buffer.from(refs.map((r) => pkt(`${r.oid} ${r.ref}\n`)).join('') + FLUSH);
}

/**
 * The v2 fetch as a v0 request: the first want carries the capabilities (only ones the server
 * offers), then the shallow boundary, deepen, a flush, the haves and done, all at once (over SSH
 * the channel is one bidirectional stream; upload-pack reads the haves after its shallow answer).
 */
export function fetchRequestV0(body: Buffer, ad: V0Advertisement): Buffer {
  const { args } = v2Request(body);
  const band = ad.caps.has('side-band-64k') ? 'side-band-64k' : ad.caps.has('side-band') ? 'side-band' : undefined;
  if (!band) throw new ProtocolError('the server (protocol v0) offers no side-band: Steward cannot read its pack');
  const deepen = args.find((l) => l.startsWith('deepen '));
  if (deepen && !ad.caps.has('shallow'))
    throw new ProtocolError('the server (protocol v0) cannot send a shallow fetch');
  const wanted = ['thin-pack', 'no-progress', 'ofs-delta', 'deepen-relative'].filter(
    (c) => args.includes(c) && ad.caps.has(c),
  );
  const caps = [band, ...wanted, ...(deepen ? ['shallow'] : []), `agent=steward/${agentVersion}`].join(' ');
  const wants = args.filter((l) => l.startsWith('want ')).map((l, i) => (i === 0 ? `${l} ${caps}` : l));
  const lines = [
    ...wants.map((l) => pkt(`${l}\n`)),
    ...args.filter((l) => l.startsWith('shallow ')).map((l) => pkt(`${l}\n`)),
    ...(deepen ? [pkt(`${deepen}\n`)] : []),
    FLUSH,
    ...args.filter((l) => l.startsWith('have ')).map((l) => pkt(`${l}\n`)),
    pkt('done\n'),
  ];
  return Buffer.from(lines.join(''));
}

/**
 * The v0 fetch answer as v2 sections: shallow/unshallow lines become `shallow-info`, ACK/NAK lines
 * are dropped, and from the first side-band packet on everything passes through as `packfile`.
 */
export async function* fetchAnswerFromV0(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const shallow: string[] = [];
  let inPack = false;
  for await (const p of packets(body)) {
    if (inPack) {
      yield p.kind === 'data' ? framed(p.payload) : Buffer.from(FLUSH);
      continue;
    }
    if (p.kind !== 'data') continue; // the flush after the shallow lines
    const band = p.payload[0]!;
    if (band >= 1 && band <= 3) {
      inPack = true;
      const head = shallow.length > 0 ? pkt('shallow-info\n') + shallow.map((l) => pkt(`${l}\n`)).join('') + DELIM : '';
      yield Buffer.from(head + pkt('packfile\n'));
      yield framed(p.payload);
      continue;
    }
    const line = p.payload.toString('utf8').replace(/\n$/, '');
    if (/^(shallow|unshallow) [0-9a-f]{40}$/.test(line)) shallow.push(line);
    else if (line.startsWith('ERR ')) yield Buffer.from(pkt(`${line}\n`));
    else if (!/^(ACK [0-9a-f]{40}( \w+)?|NAK)$/.test(line))
      throw new ProtocolError(`unexpected line in a protocol v0 fetch answer: ${JSON.stringify(line.slice(0, 60))}`);
  }
}

const framed = (payload: Buffer): Buffer =>
  Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);

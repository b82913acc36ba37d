import t from 'tap';
import { FLUSH, parsePktLines, pkt, readFetchAnswer } from '../../agent/source/pktline.js';
import { fetchAnswerFromV0, fetchRequestV0, lsRefsAnswer, readV0Advertisement } from '../../agent/source/sshv0.js';

// The protocol v0 adapter of the SSH transport (the end-to-end case is in test/e2e/ssh.test.ts,
// against a real sshd that drops GIT_PROTOCOL). These are the inputs a real server cannot be
// made to send: a missing capability, junk in the answer.
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const ad = readV0Advertisement([
  `${A} HEAD\0multi_ack side-band-64k ofs-delta shallow deepen-relative no-progress agent=git/2.39`,
  `${A} refs/heads/main`,
  `${B} refs/heads/steward-status`,
  `${B} refs/tags/v1`,
  `${A} refs/tags/v1^{}`,
  `shallow ${B}`,
]);
async function* stream(...chunks: Buffer[]): AsyncIterable<Uint8Array> {
  yield* chunks;
}
const v2 = (command: string, args: string[]) =>
  Buffer.from(pkt(`command=${command}\n`) + '0001' + args.map((l) => pkt(`${l}\n`)).join('') + FLUSH);

t.test('ls-refs is answered from the advertisement, by ref-prefix', async (t) => {
  t.same(ad.refs.length, 4, 'peeled tags are not refs');
  t.ok(ad.caps.has('side-band-64k'));
  t.same(parsePktLines(lsRefsAnswer(v2('ls-refs', ['ref-prefix refs/heads/main']), ad)), [`${A} refs/heads/main`]);
  t.same(parsePktLines(lsRefsAnswer(v2('ls-refs', ['ref-prefix refs/heads/nope']), ad)), []);
  t.throws(() => readV0Advertisement(['<html>']), { code: 'E_GIT_PROTOCOL', message: /not a ref advertisement line/ });
});

t.test('fetch becomes v0 wants with only offered capabilities; a server without side-band is refused', async (t) => {
  const body = v2('fetch', ['thin-pack', 'no-progress', 'ofs-delta', 'deepen 1', `want ${A}`, `have ${B}`, 'done']);
  const lines = fetchRequestV0(body, ad).toString('latin1');
  t.match(lines, `want ${A} side-band-64k no-progress ofs-delta shallow agent=steward/`);
  t.notMatch(lines, 'thin-pack', 'not offered, not asked');
  t.match(lines, `deepen 1\n0000`);
  t.match(lines, `have ${B}\n0009done\n`);
  const bare = readV0Advertisement([`${A} refs/heads/main\0ofs-delta shallow`]);
  t.throws(() => fetchRequestV0(body, bare), { code: 'E_GIT_PROTOCOL', message: /offers no side-band/ });
});

t.test('the v0 answer reads as a v2 one: shallow lines kept, ACK/NAK dropped, junk refused', async (t) => {
  const pack = Buffer.from('PACK-bytes');
  const answer = [
    pkt(`shallow ${A}\n`),
    FLUSH,
    pkt('NAK\n'),
    (pack.length + 5).toString(16).padStart(4, '0'),
    '\x01',
    pack.toString('latin1'),
    FLUSH,
  ].join('');
  const got: Buffer[] = [];
  const read = await readFetchAnswer(
    fetchAnswerFromV0(stream(Buffer.from(answer, 'latin1'))),
    async (d) => void got.push(Buffer.from(d)),
  );
  t.same(read.shallow, [A]);
  t.equal(Buffer.concat(got).toString(), 'PACK-bytes');
  const junk = fetchAnswerFromV0(stream(Buffer.from(pkt('hello there\n'))));
  await t.rejects(
    readFetchAnswer(junk, async () => undefined),
    { message: /unexpected line in a protocol v0 fetch answer/ },
  );
});

import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateSync } from 'node:zlib';
import { createHttpClient } from '../../agent/source/http.js';
import { ObjectStore } from '../../agent/source/objects.js';
import {
  entryHeader,
  indexPack,
  objectId,
  PackFormatError,
  PackTooLargeError,
  writePack,
} from '../../agent/source/pack.js';
import { GitRepo } from '../../agent/source/repo.js';
import { createFleetRepo, gitOut, startGitServer } from '../helpers/git.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;

/** Text files that differ a little from each other, so that git stores most of them as deltas. */
function similarFiles(n: number, round = 0, prefix = 'hosts/a'): Record<string, string> {
  const base = Array.from({ length: 200 }, (_, i) => `line ${i}: ${'x'.repeat(i % 40)}\n`).join('');
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++)
    files[`${prefix}/f${i}.yaml`] = `${base}changed: ${i} in round ${round}\n${base.slice(0, i * 10)}`;
  return files;
}

/** A real git repository packed with deltas (depth up to 50), and the path of its one pack. */
async function gitPack(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; pack: string; idx: string }> {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'packed');
  for (let round = 0; round < 3; round++) await fleet.commit(similarFiles(60 + round, round));
  await fleet.git('repack', '-adfq', '--depth=50', '--window=250');
  const packDir = join(fleet.work, '.git', 'objects', 'pack');
  const name = (await readdir(packDir)).find((f) => f.endsWith('.pack'))!;
  return {
    dir: join(fleet.work, '.git'),
    pack: join(packDir, name),
    idx: join(packDir, name.replace(/\.pack$/, '.idx')),
  };
}

t.test('an index built from a real git pack with deltas is byte for byte the one git index-pack writes', async (t) => {
  const { pack, idx } = await gitPack(t);
  const deltas = (await exec('git', ['verify-pack', '-v', pack])).stdout
    .split('\n')
    .filter((l) => /^[0-9a-f]{40} \w+\s+\d+ \d+ \d+ \d+ [0-9a-f]{40}$/.test(l)).length;
  t.ok(deltas > 50, `the pack holds deltas (${deltas})`);
  const mine = await indexPack(pack, { maxObjectBytes: 64 * MiB });
  t.same(mine.idx, await readFile(idx), 'same index');
  t.equal(`pack-${mine.sha}.pack`, pack.split('/').pop(), 'named by its checksum as git names it');
});

t.test('every object of a real git pack reads back with its own id, through deltas', async (t) => {
  const { dir } = await gitPack(t);
  const store = new ObjectStore(dir, 64 * MiB);
  const listed = (await exec('git', ['--git-dir', dir, 'cat-file', '--batch-all-objects', '--batch-check'])).stdout
    .trim()
    .split('\n');
  t.ok(listed.length > 150, `${listed.length} objects`);
  for (const line of listed) {
    const [oid, type] = line.split(' ') as [string, string];
    const obj = await store.read(oid);
    if (obj.type !== type || objectId(obj.type, obj.data) !== oid) {
      t.fail(`${oid} read back as ${obj.type} ${objectId(obj.type, obj.data)}`);
      return;
    }
  }
  t.pass('all match');
  // A tree and a commit parse as git prints them.
  const head = (await exec('git', ['--git-dir', dir, 'rev-parse', 'HEAD'])).stdout.trim();
  const commit = await store.readCommit(head);
  t.equal(commit.tree, (await exec('git', ['--git-dir', dir, 'rev-parse', 'HEAD^{tree}'])).stdout.trim());
  t.equal(commit.parents.length, 1);
  const entry = await store.resolvePath(head, 'hosts/a/f3.yaml');
  t.equal((await store.readBlob(entry!.oid)).toString(), similarFiles(62, 2)['hosts/a/f3.yaml']);
  t.equal(await store.resolvePath(head, 'hosts/nope'), undefined, 'a missing path is undefined');
  t.equal(await store.resolvePath(head, 'hosts/a/f3.yaml/deeper'), undefined, 'a path through a file is undefined');
});

t.test(
  'a pack written for compaction is read by git: verify-pack passes and index-pack gives the same index',
  async (t) => {
    const { dir } = await gitPack(t);
    const store = new ObjectStore(dir, 64 * MiB);
    const oids = (
      await exec('git', ['--git-dir', dir, 'cat-file', '--batch-all-objects', '--batch-check=%(objectname)'])
    ).stdout
      .trim()
      .split('\n');
    const out = await mkdtemp(join(tmpdir(), 'steward-pack-'));
    const written = await writePack(join(out, 'p.pack'), oids, (oid) => store.read(oid));
    await exec('git', ['index-pack', '-o', join(out, 'git.idx'), join(out, 'p.pack')]);
    t.same(written.idx, await readFile(join(out, 'git.idx')), 'git indexes it the same');
    await writeFile(join(out, 'p.idx'), written.idx);
    await exec('git', ['verify-pack', join(out, 'p.idx')]);
    t.pass('git verify-pack accepts it');
  },
);

/** A pack of the given raw entries (each: header bytes + zlib data), with a correct trailer unless told. */
function rawPack(entries: Buffer[], opts: { count?: number; badSum?: boolean; tail?: Buffer } = {}): Buffer {
  const header = Buffer.alloc(12);
  header.write('PACK', 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(opts.count ?? entries.length, 8);
  const body = Buffer.concat([header, ...entries, opts.tail ?? Buffer.alloc(0)]);
  const sum = createHash('sha1').update(body).digest();
  if (opts.badSum) sum[0] = sum[0]! ^ 1;
  return Buffer.concat([body, sum]);
}

// Entry headers come from the pack writer's encoder; what it writes is checked against git above.
const entryHead = entryHeader;
const blobEntry = (data: Buffer) => Buffer.concat([entryHead(3, data.length), deflateSync(data)]);

t.test('hostile packs: each is refused with the byte and reason, and none is buffered past the limit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'steward-badpack-'));
  const cases: Array<[string, Buffer, RegExp, typeof PackFormatError | typeof PackTooLargeError]> = [
    [
      'not a pack',
      Buffer.concat([Buffer.from('<html>hello</html>'), Buffer.alloc(20)]),
      /not a Git pack/,
      PackFormatError,
    ],
    [
      'a bad checksum',
      rawPack([blobEntry(Buffer.from('a'))], { badSum: true }),
      /checksum does not match/,
      PackFormatError,
    ],
    [
      'more objects claimed than there are',
      rawPack([blobEntry(Buffer.from('hello'))], { count: 2 }),
      /ends after 1 of its 2 objects/,
      PackFormatError,
    ],
    [
      'a count no file of this size can hold',
      rawPack([blobEntry(Buffer.from('hello'))], { count: 1_000_000 }),
      /claims 1000000 objects/,
      PackFormatError,
    ],
    [
      'bytes after the last object',
      rawPack([blobEntry(Buffer.from('hello'))], { tail: Buffer.from('junk') }),
      /bytes after its last object/,
      PackFormatError,
    ],
    [
      'data that inflates to less than its header says',
      rawPack([Buffer.concat([entryHead(3, 50), deflateSync(Buffer.from('short'))])]),
      /inflates to 5 bytes, its header says 50/,
      PackFormatError,
    ],
    [
      'data that inflates to more than its header says',
      rawPack([Buffer.concat([entryHead(3, 3), deflateSync(Buffer.from('much longer'))])]),
      /more than the 3 bytes/,
      PackFormatError,
    ],
    [
      'zlib garbage',
      rawPack([Buffer.concat([entryHead(3, 10), randomBytes(30)])]),
      /not valid zlib data|truncated/,
      PackFormatError,
    ],
    // 8 MiB of zeros is 8 KiB of deflate: the declared size is refused before anything is inflated.
    [
      'a blob larger than the limit (a zip bomb)',
      rawPack([blobEntry(Buffer.alloc(8 * MiB))]),
      /8388608 bytes, more than the limit of 1048576/,
      PackTooLargeError,
    ],
    [
      'a delta whose base is not in the pack',
      rawPack([Buffer.concat([entryHead(7, 4), randomBytes(20), deflateSync(Buffer.from([1, 1, 0x91, 0]))])]),
      /delta base [0-9a-f]{40} is not in the pack/,
      PackFormatError,
    ],
    [
      'a delta pointing before the pack',
      rawPack([Buffer.concat([entryHead(6, 4), Buffer.from([0x7f]), deflateSync(Buffer.from([1, 1, 0x91, 0]))])]),
      /delta base offset points outside the pack/,
      PackFormatError,
    ],
    [
      'an unknown object type',
      rawPack([Buffer.concat([entryHead(5, 1), deflateSync(Buffer.from('a'))])]),
      /unknown object type 5/,
      PackFormatError,
    ],
  ];
  for (const [what, bytes, message, type] of cases) {
    const path = join(dir, `${what.replace(/\W+/g, '-')}.pack`);
    await writeFile(path, bytes);
    const err = await indexPack(path, { maxObjectBytes: MiB }).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(err instanceof type, `${what}: ${type.name}`);
    t.match(err?.message, message, `${what}: ${err?.message}`);
  }
  // Many small deltas that each build a large object: the total work is bounded too.
  const base = Buffer.alloc(MiB - 64, 'a');
  const deltaOfBase = (size: number) => {
    const v = (n: number) => {
      const out = [];
      do {
        let c = n & 0x7f;
        n = Math.floor(n / 128);
        if (n > 0) c |= 0x80;
        out.push(c);
      } while (n > 0);
      return out;
    };
    // copy the whole base (offset 0, length = size) once
    return Buffer.from([
      ...v(size),
      ...v(size),
      0x80 | 0x10 | 0x20 | 0x40,
      size & 0xff,
      (size >> 8) & 0xff,
      (size >> 16) & 0xff,
    ]);
  };
  const entries = [blobEntry(base)];
  let offset = 12 + entries[0]!.length;
  const d = deltaOfBase(base.length);
  for (let i = 0; i < 80; i++) {
    const back = offset - 12;
    const ofs = [];
    let n = back;
    ofs.unshift(n & 0x7f);
    while ((n = Math.floor(n / 128)) > 0) ofs.unshift(0x80 | (--n & 0x7f));
    const e = Buffer.concat([entryHead(6, d.length), Buffer.from(ofs), deflateSync(d)]);
    entries.push(e);
    offset += e.length;
  }
  const bomb = join(dir, 'delta-bomb.pack');
  await writeFile(bomb, rawPack(entries));
  const err = await indexPack(bomb, { maxObjectBytes: MiB, maxWorkBytes: 32 * MiB }).catch((e: Error) => e);
  t.ok(err instanceof PackTooLargeError, 'deltas that expand past the work limit are cut off');
  t.match((err as Error).message, /expands to more than/);
  const ok = await indexPack(bomb, { maxObjectBytes: MiB, maxWorkBytes: 200 * MiB });
  t.equal(ok.objects, 81, 'the same pack within the work limit indexes (its deltas are valid)');
});

t.test(
  'a fetch over protocol v2 streams the pack to disk: git fsck accepts the store, and the next fetch brings only what changed',
  async (t) => {
    const server = await startGitServer();
    t.teardown(() => server.stop());
    const fleet = await createFleetRepo(server, 'fleet');
    await fleet.commit(similarFiles(80));
    await fleet.git('push', '-q', 'origin', 'HEAD:main');
    await gitOut(fleet.bare, 'repack', '-adq', '--depth=50', '--window=100');
    const repo = new GitRepo({
      gitdir: join(await mkdtemp(join(tmpdir(), 'steward-v2-')), 'source.git'),
      url: server.url('fleet'),
      headers: {},
      http: createHttpClient({ timeoutMs: 10_000 }),
    });
    const c1 = await repo.fetch('main');
    await exec('git', ['--git-dir', repo.gitdir, 'fsck', '--no-dangling', c1]);
    t.pass('git fsck accepts the fetched store and its shallow file');
    t.equal(
      (await readFile(join(repo.gitdir, 'shallow'), 'utf8')).trim(),
      c1,
      'the fetched commit is the shallow boundary',
    );
    const size1 = (await readdir(join(repo.gitdir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack')).length;
    const c2 = await fleet.commit({ 'hosts/a/f1.yaml': 'small: change\n' });
    t.equal(await repo.fetch('main'), c2);
    const packs = (await readdir(join(repo.gitdir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack'));
    t.equal(packs.length, size1 + 1, 'one more pack');
    const newest = await Promise.all(
      packs.map(
        async (p) =>
          (await exec('git', ['verify-pack', '-v', join(repo.gitdir, 'objects', 'pack', p)])).stdout
            .split('\n')
            .filter((l) => /^[0-9a-f]{40} /.test(l)).length,
      ),
    );
    // The commit, three trees, the blob, and the bases its thin deltas needed (appended from the
    // store); without thin-pack git sends all 84 objects of the tree again.
    t.ok(
      Math.min(...newest) <= 10,
      `the second pack holds only the changed objects (${Math.min(...newest)} of ${Math.max(...newest)})`,
    );
    await exec('git', ['--git-dir', repo.gitdir, 'fsck', '--no-dangling', c2]);
    const entry = await repo.objects.resolvePath(c2, 'hosts/a/f1.yaml');
    t.equal((await repo.objects.readBlob(entry!.oid)).toString(), 'small: change\n');
    t.equal(await repo.isDescendant('main', c2, c1), true, 'the history is walked (deepened past the boundary)');
    const { before: b, after } = await repo.compact([c2]);
    t.ok(b >= 2 && after === 1, `compacted ${b} -> ${after}`);
    await exec('git', ['--git-dir', repo.gitdir, 'fsck', '--no-dangling', c2]);
    t.pass('git fsck accepts the compacted store');
  },
);

t.test(
  'objects written by the store are what git writes: same ids, git fsck clean, tree order as git sorts it',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'steward-write-'));
    await exec('git', ['init', '-q', '--bare', dir]);
    const store = new ObjectStore(dir, MiB);
    const gitHash = async (text: string) =>
      (
        await exec('sh', ['-c', `printf '%s' "$1" | git --git-dir "$2" hash-object -w --stdin`, 'sh', text, dir])
      ).stdout.trim();
    const blob = await store.writeBlob(Buffer.from('{"a": 1}\n'));
    t.equal(blob, await gitHash('{"a": 1}\n'), 'a blob has the id git gives it');
    const sub = await store.writeTree([{ mode: '100644', path: 'status.json', oid: blob, type: 'blob' }]);
    // "a.b" (a file) sorts before "a" (a directory, compared as "a/"), which sorts before "a0".
    const root = await store.writeTree([
      { mode: '100644', path: 'a0', oid: blob, type: 'blob' },
      { mode: '040000', path: 'a', oid: sub, type: 'tree' },
      { mode: '100644', path: 'a.b', oid: blob, type: 'blob' },
    ]);
    const commit = await store.writeCommit({
      tree: root,
      parents: [],
      author: { name: 'host-1', email: 'host-1@steward.invalid', timestamp: 1700000000 },
      message: 'steward(host-1): Ready\n',
    });
    await exec('git', ['--git-dir', dir, 'update-ref', 'refs/heads/main', commit]);
    await exec('git', ['--git-dir', dir, 'fsck', '--strict']);
    t.pass('git fsck --strict accepts the tree and the commit');
    t.equal(
      (await exec('git', ['--git-dir', dir, 'ls-tree', '--name-only', 'main'])).stdout,
      'a.b\na\na0\n',
      "git's tree order",
    );
    t.equal(
      (await exec('git', ['--git-dir', dir, 'log', '-1', '--format=%an <%ae> %at %s', 'main'])).stdout.trim(),
      'host-1 <host-1@steward.invalid> 1700000000 steward(host-1): Ready',
    );
    t.same(
      await store.readTree(root),
      [
        { mode: '100644', path: 'a.b', oid: blob, type: 'blob' },
        { mode: '040000', path: 'a', oid: sub, type: 'tree' },
        { mode: '100644', path: 'a0', oid: blob, type: 'blob' },
      ],
      'and it reads back',
    );
  },
);

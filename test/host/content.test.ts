import { chmod, lstat, mkdtemp, rename, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CHUNK_BYTES, ContentCache, SETTLE_MS } from '../../agent/host/content.js';

// The content cache lets an idle poll skip reading a file; a change of any kind must still be seen.
const setup = async (t: Test) => {
  const dir = await mkdtemp(join(tmpdir(), 'steward-content-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let reads = 0;
  const cache = new ContentCache(() => {
    reads += 1;
    const hash = createHash('sha256');
    return { update: (data) => void hash.update(data), digest: () => hash.digest('hex') };
  });
  const path = join(dir, 'app.conf');
  // What an observe pass does: lstat, then the digest, `later` ms after the file last changed.
  const look = async (later = SETTLE_MS + 1000) => {
    const st = await lstat(path);
    return cache.of(path, st, st.ctimeMs + later);
  };
  return { cache, path, look, reads: () => reads };
};

t.test('a file that stood still is not read again; any change to it is', async (t) => {
  const { cache, path, look, reads } = await setup(t);
  await writeFile(path, 'port = 80\n');
  const first = await look();
  cache.pass();
  t.equal(await look(), first, 'same digest');
  t.equal(reads(), 1, 'an unchanged, settled file is vouched for by its stat');

  // Same size, and mtime put back as it was: only ctime tells, and it does.
  const before = await lstat(path);
  await writeFile(path, 'port = 81\n');
  await utimes(path, before.atime, before.mtime);
  cache.pass();
  const edited = await look();
  t.not(edited, first, 'content edited behind a restored mtime is read again');
  t.equal(edited, createHash('sha256').update('port = 81\n').digest('hex'));

  await chmod(path, 0o600);
  cache.pass();
  await look();
  t.equal(reads(), 3, 'a chmod moves ctime: read again');

  await writeFile(`${path}.new`, 'port = 82\n');
  await rename(`${path}.new`, path);
  cache.pass();
  t.equal(await look(), createHash('sha256').update('port = 82\n').digest('hex'), 'a file renamed over it is read');
});

t.test('a file changed within the settle time is read on every pass', async (t) => {
  const { cache, path, look, reads } = await setup(t);
  await writeFile(path, 'x\n');
  for (let i = 0; i < 3; i++) {
    cache.pass();
    await look(10); // a write in the same clock tick would leave the stat as it was
  }
  t.equal(reads(), 3);
});

t.test('what two passes did not look at is forgotten', async (t) => {
  const { cache, path, look, reads } = await setup(t);
  await writeFile(path, 'x\n');
  await look();
  cache.pass(); // the path is kept from the last pass
  cache.pass(); // not seen in that one: dropped
  await look();
  t.equal(reads(), 2, 'read again after it was dropped');
});

t.test('a huge file at a managed path is read in pieces: its digest, in bounded memory', async (t) => {
  const { cache, path, look } = await setup(t);
  // Just over 2 GiB, sparse: more than readFile takes (reading it whole threw
  // ERR_FS_FILE_TOO_LARGE, and a 1.5 GiB one would have taken 1.5 GiB of the box's memory).
  const size = 2 * 1024 ** 3 + 3;
  await writeFile(path, '');
  await truncate(path, size);
  const rss = process.memoryUsage().rss;
  const digest = await look();
  const grew = process.memoryUsage().rss - rss;
  const zeros = Buffer.alloc(CHUNK_BYTES);
  const whole = createHash('sha256');
  for (let at = 0; at < size; at += CHUNK_BYTES) whole.update(zeros.subarray(0, Math.min(CHUNK_BYTES, size - at)));
  t.equal(digest, whole.digest('hex'), 'the digest of every byte');
  t.ok(grew < 64 * 1024 * 1024, `RSS grew by ${(grew / 1024 / 1024).toFixed(1)} MiB while it was read`);

  // Pieces that do not divide the file evenly: the same digest as the bytes hashed at once.
  const odd = Buffer.from(Array.from({ length: CHUNK_BYTES * 2 + 7 }, (_, i) => i % 251));
  await writeFile(path, odd);
  cache.pass();
  t.equal(await look(), createHash('sha256').update(odd).digest('hex'));
});

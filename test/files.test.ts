import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtemp, open, readFile, rm, writeFile } from '../agent/files.js';

// agent/files.ts stands in for node:fs/promises: the same results and the same errors.
t.test('a FileHandle writes, appends, reads, truncates and syncs like node:fs/promises', async (t) => {
  const dir = await mkdtemp('/tmp/steward-files-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'f');

  const w = await open(path, 'w', 0o640);
  await w.writeFile('hello world');
  await w.write(Buffer.from('HELLO'), 0, 5, 0); // at a position: the file's offset stays
  await w.writeFile('!');
  await w.sync();
  await w.close();
  t.equal(readFileSync(path, 'utf8'), 'HELLO world!');

  const a = await open(path, 'a');
  await a.appendFile('\nmore');
  await a.close();
  t.equal(await readFile(path, 'utf8'), 'HELLO world!\nmore');

  const rw = await open(path, 'r+');
  const buf = Buffer.alloc(5);
  t.same(await rw.read(buf, 0, 5, 6), { bytesRead: 5 });
  t.equal(buf.toString(), 'world');
  t.equal((await rw.read(Buffer.alloc(10), 0, 10, 100)).bytesRead, 0, 'past the end: nothing read');
  await rw.truncate(5);
  await rw.chmod(0o600);
  t.equal((await rw.stat()).size, 5);
  await rw.close();
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(readFileSync(path, 'utf8'), 'HELLO');
});

t.test('errors keep their code and path', async (t) => {
  await t.rejects(open('/nonexistent/steward/f', 'r'), { code: 'ENOENT', path: '/nonexistent/steward/f' });
  await t.rejects(readFile('/nonexistent/steward/g'), { code: 'ENOENT' });
  await t.rejects(writeFile('/nonexistent/steward/h', 'x'), { code: 'ENOENT' });
  const dir = await mkdtemp('/tmp/steward-files-');
  const h = await open(join(dir, 'x'), 'wx');
  await h.close();
  await t.rejects(open(join(dir, 'x'), 'wx'), { code: 'EEXIST' }, "'wx' does not overwrite");
  await rm(dir, { recursive: true });
});

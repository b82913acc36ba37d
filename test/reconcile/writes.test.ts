import t, { type Test } from 'tap';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../../agent/reconcile/context.js';
import { flushMemo, runOnce } from '../../agent/reconcile/run.js';
import { containerDoc, makeAgent, memoryLogger, type TestAgent } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';

const fx = fleetFixture(t);

/** Every file under stateDir with its inode, size and mtime: what a write would change. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath ?? e.path, e.name);
    const st = await stat(path);
    out.set(path.slice(dir.length), `${st.ino}:${st.size}:${st.mtimeMs}`);
  }
  return out;
}

const written = (before: Map<string, string>, after: Map<string, string>) =>
  [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k)).sort();

const readJsonFile = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;

async function setup(t: Test): Promise<{ a: TestAgent; root: string; cfg: (v: string) => string }> {
  const root = await mkdtemp(join(tmpdir(), 'steward-writes-root-'));
  const a = await makeAgent({ url: fx.server.url('fleet'), extra: `files:\n  roots: [${root}]\n` });
  fx.agents.push(a);
  a.ctx.memo = {}; // as the daemon (steward run) has it
  const cfg = (v: string) =>
    JSON.stringify({
      apiVersion: 'steward/v1',
      kind: 'File',
      metadata: { name: 'cfg' },
      spec: { path: join(root, 'app.conf'), content: v },
    });
  await fx.fleet.commit({
    [`hosts/${a.host}/cfg.yaml`]: cfg('v1'),
    [`hosts/${a.host}/one.yaml`]: containerDoc(`one-${a.host}`, { image: 'local/busybox:1' }),
  });
  t.equal((await a.once()).outcome.phase, 'Converged');
  return { a, root, cfg };
}

/** A run as `steward once` makes it: a context of its own, no memory of earlier runs. */
async function cliOnce(a: TestAgent) {
  const ctx = await createContext(a.ctx.config, memoryLogger([]), { facts: false });
  return runOnce(ctx, { apply: true, signal: new AbortController().signal });
}

t.test('a steward once that changes nothing writes nothing to stateDir', async (t) => {
  const { a, root, cfg } = await setup(t);
  await cliOnce(a);
  const before = await snapshot(a.stateDir);
  for (let i = 0; i < 3; i++) {
    const r = await cliOnce(a);
    t.equal(r.outcome.phase, 'Converged');
    t.ok(
      [...r.outcome.results.values()].every((x) => x.action === 'none'),
      'nothing to do',
    );
  }
  t.same(written(before, await snapshot(a.stateDir)), [], 'no file under stateDir was written (a timer every minute)');

  // Drift is still corrected, and a change is written at once: the state and the outbox.
  await writeFile(join(root, 'app.conf'), 'tampered');
  await cliOnce(a);
  t.equal(await readFile(join(root, 'app.conf'), 'utf8'), 'v1', 'drift corrected');
  const mid = await snapshot(a.stateDir);
  await fx.fleet.commit({ [`hosts/${a.host}/cfg.yaml`]: cfg('v2') });
  const changed = await cliOnce(a);
  const w = written(mid, await snapshot(a.stateDir));
  t.ok(w.includes('/state.json') && w.includes('/status.json'), `state and outbox written (${w.join(', ')})`);
  t.equal((await readJsonFile(join(a.stateDir, 'state.json'))).appliedRevision, changed.outcome.appliedRevision);
  t.equal((await readJsonFile(join(a.stateDir, 'status.json'))).updatedAt, changed.status!.updatedAt);

  // An outbox that is gone is written again, even by a run that changed nothing.
  await rm(join(a.stateDir, 'status.json'));
  const again = await cliOnce(a);
  t.equal((await readJsonFile(join(a.stateDir, 'status.json'))).updatedAt, again.status!.updatedAt, 'outbox back');
});

t.test('a daemon run that changes nothing writes nothing to stateDir', async (t) => {
  const { a, root, cfg } = await setup(t);
  await a.once();
  const before = await snapshot(a.stateDir);
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await a.once();
    t.equal(r.outcome.phase, 'Converged');
    t.ok(
      [...r.outcome.results.values()].every((x) => x.action === 'none'),
      'nothing to do',
    );
    runs.push(r.status!.recentRuns!.length);
  }
  t.same(written(before, await snapshot(a.stateDir)), [], 'no file under stateDir was written');
  t.ok(runs[2]! > runs[0]!, `the report still counts every run (${runs.join(', ')} recent runs)`);

  // Drift is still corrected (the file is written, stateDir need not be).
  await writeFile(join(root, 'app.conf'), 'tampered');
  await a.once();
  t.equal(await readFile(join(root, 'app.conf'), 'utf8'), 'v1', 'drift corrected');

  // A change is written at once: the state and the outbox.
  const mid = await snapshot(a.stateDir);
  await fx.fleet.commit({ [`hosts/${a.host}/cfg.yaml`]: cfg('v2') });
  const changed = await a.once();
  t.equal(await readFile(join(root, 'app.conf'), 'utf8'), 'v2');
  const w = written(mid, await snapshot(a.stateDir));
  t.ok(w.includes('/state.json') && w.includes('/status.json'), `state and outbox written (${w.join(', ')})`);
  const onDisk = await readJsonFile(join(a.stateDir, 'state.json'));
  t.equal(onDisk.appliedRevision, changed.outcome.appliedRevision, 'state.json holds the new revision');
});

t.test('what was kept in memory is written at a stop, and another writer is read back', async (t) => {
  const { a, cfg } = await setup(t);
  await a.once();
  let last = await a.once();
  last = await a.once();
  const inMemory = last.status!.recentRuns!.length;
  const disk = (await readJsonFile(join(a.stateDir, 'state.json'))).recentRuns as unknown[];
  t.ok(disk.length < inMemory, `state.json lags by timings only (${disk.length} < ${inMemory})`);

  // `steward once` between two polls, on a new commit: its own context, no memo, writes the file.
  await fx.fleet.commit({ [`hosts/${a.host}/cfg.yaml`]: cfg('v2') });
  const theirs = await cliOnce(a);
  t.equal(theirs.outcome.results.get('File/cfg')?.action, 'update', 'the other run applied the commit');
  const next = await a.once();
  const starts = next.status!.recentRuns!.map((r) => r.startedAt);
  t.ok(starts.includes(theirs.outcome.startedAt.toISOString()), "the daemon's next run read the other run's state");

  await a.once();
  const kept = await a.once();
  await flushMemo(a.ctx);
  const flushed = await readJsonFile(join(a.stateDir, 'state.json'));
  t.same(
    (flushed.recentRuns as Array<{ startedAt: string }>).map((r) => r.startedAt),
    kept.status!.recentRuns!.map((r) => r.startedAt),
    'state.json has every run after the flush',
  );
  const outbox = await readJsonFile(join(a.stateDir, 'status.json'));
  t.equal(outbox.updatedAt, kept.status!.updatedAt, 'status.json is the newest report');
  t.equal((await a.once()).outcome.phase, 'Converged', 'and the next run carries on from the file');
});

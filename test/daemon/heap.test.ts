import t from 'tap';
import { getHeapStatistics } from 'node:v8';
import { HeapTrim, heapTrim, TRIM_STEP_BYTES } from '../../agent/daemon/heap.js';

// The daemon collects its heap after a run once it grew by a step since the last collection
// (agent/daemon/heap.ts): not after every run, and not never.
t.test('collects only once the heap grew by a step, then measures from what is left', async (t) => {
  let held = 10_000_000;
  let collections = 0;
  const trim = new HeapTrim(
    () => {
      collections += 1;
      held = 10_500_000; // what a collection leaves
    },
    2_000_000,
    () => held,
  );
  held += 1_999_999;
  t.equal(trim.afterRun(), false, 'just under a step: no collection');
  held += 1;
  t.equal(trim.afterRun(), true, 'a step: one collection');
  t.equal(collections, 1);
  held = 12_000_000; // 1.5 MB above what the collection left
  t.equal(trim.afterRun(), false, 'the next step counts from after the collection');
  held = 12_500_000;
  t.equal(trim.afterRun(), true);
  t.equal(collections, 2);
});

t.test('on a real heap: garbage of several steps is given back by one trim', async (t) => {
  const trim = heapTrim(); // this process has no --expose-gc: the fallback of node dist/...
  const held = () => getHeapStatistics().used_heap_size + getHeapStatistics().external_memory;
  let garbage: unknown[] | undefined = [];
  for (let i = 0; i < 100_000; i++) garbage.push({ i, s: `entry ${i}`, b: Buffer.alloc(64) });
  garbage = undefined;
  const before = held();
  t.equal(trim.afterRun(), true, 'the heap grew by more than a step');
  const after = held();
  t.ok(before - after > TRIM_STEP_BYTES, `collected ${((before - after) / 2 ** 20).toFixed(1)} MiB`);
  t.equal(trim.afterRun(), false, 'nothing new: no second collection');
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc is not left on this context');
});

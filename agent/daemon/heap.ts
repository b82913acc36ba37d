import { createRequire } from 'node:module';

const MiB = 2 ** 20;
/** The growth that asks for a collection: a few tens of idle polls' worth (bench/README.md). */
export const TRIM_STEP_BYTES = 1 * MiB;

/**
 * Gives back what the daemon's runs leave behind. An idle poll leaves about 26 KiB of garbage
 * in V8's old space (objects alive across a scavenge of the 1 MiB young generation), and V8's
 * own memory reducer collects it only every few hundred polls, so between its collections the
 * idle RSS saws up by 5-6 MiB. After each run, once the heap and the memory it holds outside
 * (Buffers) have grown by `stepBytes` since the last collection, one full collection brings
 * them back: 7-9 ms for an idle daemon's 12 MiB heap (a 2 MiB step ran it once per ~52 polls;
 * the 1 MiB step kept RSS 0.2-0.7 MiB lower at no measured CPU cost, bench/README.md). After a large
 * change it runs at once, and RSS is back at the idle figure before the next poll.
 */
export class HeapTrim {
  #floor: number;

  constructor(
    private readonly collect: () => void,
    private readonly stepBytes = TRIM_STEP_BYTES,
    private readonly measure = heldBytes,
  ) {
    this.#floor = measure();
  }

  /** Called after a run: collects when the heap grew by a step. Returns whether it did. */
  afterRun(): boolean {
    if (this.measure() - this.#floor < this.stepBytes) return false;
    this.collect();
    this.#floor = this.measure();
    return true;
  }
}

/**
 * V8's heap in use plus the memory its objects hold outside it (Buffers, ArrayBuffers): the
 * same two figures as `v8.getHeapStatistics()`, without loading `node:v8` (on Node 26 its
 * profiler modules cost 0.6 MiB of RSS for the process's life).
 */
function heldBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/**
 * A trimmer for this process. `/usr/bin/steward` starts Node with `--expose-gc`; started any
 * other way (`node dist/...`), the flag is set now and the collector taken from a new context,
 * which costs that context (about 0.4 MiB, measured on Node 20).
 */
export function heapTrim(): HeapTrim {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return new HeapTrim(exposed);
  // Loaded here only (process.getBuiltinModule would do, but needs Node 20.16; engines says 20.10).
  const require = createRequire(import.meta.url);
  const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
  const { runInNewContext } = require('node:vm') as typeof import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  return new HeapTrim(gc);
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { link, readFile, rm, writeFile, mkdir } from '../files.js';
import { StewardError } from '../errors.js';
import { monotonicMs } from '../duration.js';

/** The start time of a process (clock ticks since boot), so a reused pid is not mistaken for the owner. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** How long `steward once`, `steward plan` and the daemon wait for a run under way (the run lock). */
export const RUN_LOCK_WAIT_MS = 10 * 60_000;

/**
 * A lock file in stateDir holding "pid start-time". Taken atomically (link of a complete temp
 * file: it exists whole or not at all); a lock whose process is gone is stale and taken over.
 * With `waitMs` it waits for the holder; without, a held lock is E_LOCKED at once.
 */
export async function acquireLock(stateDir: string, name: string, waitMs = 0): Promise<() => Promise<void>> {
  await mkdir(stateDir, { recursive: true });
  const path = join(stateDir, `${name}.lock`);
  const me = `${process.pid} ${startTime(process.pid) ?? '?'}\n`;
  const tmp = `${path}.${process.pid}`;
  await writeFile(tmp, me);
  const end = monotonicMs() + waitMs;
  try {
    for (;;) {
      try {
        await link(tmp, path);
        return async () => {
          if ((await readFile(path, 'utf8').catch(() => '')) === me) await rm(path, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const [pidText, started] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
      const pid = Number(pidText);
      const alive = pid > 0 && startTime(pid) !== undefined && (started === '?' || startTime(pid) === started);
      if (!alive) {
        await rm(path, { force: true }); // stale: its process is gone
        continue;
      }
      if (monotonicMs() >= end)
        throw new StewardError(
          'E_LOCKED',
          `another steward (pid ${pid}) is running on this host with ${stateDir}; only one agent per host`,
          { retry: 'transient' },
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

import { monotonicMs, parseDuration } from '../duration.js';
import { StewardError, toStewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Bundle, Desired } from '../manifest/bundle.js';
import { driverOf, type Health, type ProbeTiming, type ResourceDriver } from '../resources/driver.js';
import type { ResourceResult } from './apply.js';
import type { Drivers } from './plan.js';

/** Failures that mean "this revision broke the host": they roll a revision back. */
export const ROLLBACK_CODES = new Set([
  'E_CONTAINER_START',
  'E_UNIT_START',
  'E_CONTAINER_UNHEALTHY',
  'E_PROBE_FAILED',
  'E_HEALTH_TIMEOUT',
]);

/** Sleeps `ms`, or until `signal` aborts; its abort listener goes with it (a run's health wait may sleep hundreds of times). */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const wake = () => (clearTimeout(t), resolve());
    const t = setTimeout(() => (signal.removeEventListener('abort', wake), resolve()), ms);
    signal.addEventListener('abort', wake, { once: true });
  });

/**
 * Health after an apply. What this run changed is watched until healthy, up to its deadline
 * (the probe's `deadline`, else health.timeout), all at once, so the run waits at most the
 * longest deadline and never longer: a check that hangs counts as not answered, and SIGTERM
 * ends the wait. What did not change gets one reading when it has a probe or a docker
 * healthcheck. A resource that is not healthy becomes Failed with the reason.
 */
export async function checkHealth(
  bundle: Bundle,
  results: Map<string, ResourceResult>,
  drivers: Drivers,
  defaultDeadlineMs: number,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const waits: Array<Promise<void>> = [];
  for (const d of bundle.resources) {
    const r = results.get(d.id);
    const driver = driverOf(drivers, d.kind);
    if (!r || !driver || r.status !== 'Ready') continue;
    const changed = r.action !== 'none';
    const live = driver.liveHealth?.(d);
    if (!changed && !live) {
      r.health = 'Healthy';
      continue;
    }
    const deadlineMs = changed ? (live?.probe?.deadline ? parseDuration(live.probe.deadline) : defaultDeadlineMs) : 0;
    waits.push(
      watch(driver, d, live?.probe, deadlineMs, signal).then((h) => {
        if (h.state === 'healthy') {
          r.health = 'Healthy';
          return;
        }
        const code =
          h.state === 'starting'
            ? changed
              ? 'E_HEALTH_TIMEOUT'
              : (h.code ?? 'E_PROBE_FAILED')
            : (h.code ?? 'E_CONTAINER_UNHEALTHY');
        const message =
          h.state === 'starting' && changed
            ? `not healthy within ${Math.round(deadlineMs / 1000)}s: ${h.message}`
            : h.message;
        r.health = 'Unhealthy';
        r.status = 'Failed';
        r.message = `${r.action === 'none' ? '' : `${r.action} done, but `}${message}`;
        r.error = new StewardError(code as StewardError['code'], message, { resource: d.id, retry: 'transient' });
        log.error({ resource: d.id, code, health: 'Unhealthy' }, `${d.id} is not healthy: ${message}`);
      }),
    );
  }
  await Promise.all(waits);
}

async function watch(
  driver: ResourceDriver<Desired, unknown>,
  d: Desired,
  probe: ProbeTiming | undefined,
  deadlineMs: number,
  signal: AbortSignal,
): Promise<Health> {
  const intervalMs = Math.max(100, parseDuration(probe?.interval ?? '1s'));
  const attemptMs = parseDuration(probe?.timeout ?? '5s') + 2000;
  const end = monotonicMs() + deadlineMs;
  let last: Health;
  for (;;) {
    last = await once(driver, d, attemptMs, signal);
    if (last.state !== 'starting' || monotonicMs() + intervalMs > end || signal.aborted) return last;
    await sleep(intervalMs, signal);
  }
}

/** One reading; a check that does not answer in time is a "starting" reading, not a hang. */
async function once(
  driver: ResourceDriver<Desired, unknown>,
  d: Desired,
  attemptMs: number,
  signal: AbortSignal,
): Promise<Health> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Health>((resolve) => {
    timer = setTimeout(
      () => resolve({ state: 'starting', message: `health check gave no answer within ${attemptMs}ms` }),
      attemptMs,
    );
  });
  try {
    return await Promise.race([
      driver
        .check(d, signal)
        .catch((err: unknown) => ({ state: 'starting' as const, message: toStewardError(err, 'E_INTERNAL').message })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

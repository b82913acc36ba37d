import { StewardError, toStewardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Desired } from '../manifest/bundle.js';
import { driverOf, type Action, type Owned } from '../resources/driver.js';
import { prerequisites, type Drivers, type Plan } from './plan.js';

export type ResourceStatus = 'Ready' | 'Failed' | 'Skipped' | 'Pruned';

export interface ResourceResult {
  id: string;
  action: Action | 'none';
  status: ResourceStatus;
  message: string;
  drift: boolean;
  error?: StewardError;
  /** What the driver said the inventory must remember after this change. */
  owned?: Owned;
  health?: 'Healthy' | 'Unhealthy' | 'Unknown';
}

/**
 * Applies a plan in order. A failing change fails only its resource; what depends on it is
 * skipped with the reason; the rest still applies. When `signal` aborts (SIGTERM), the change
 * under way finishes and the remaining ones are skipped.
 */
export async function applyPlan(
  plan: Plan,
  drivers: Drivers,
  log: Logger,
  signal: AbortSignal,
  afterChange: (r: ResourceResult) => Promise<void> = async () => undefined,
): Promise<Map<string, ResourceResult>> {
  const results = new Map<string, ResourceResult>();
  for (const id of plan.unchanged)
    results.set(id, { id, action: 'none', status: 'Ready', message: 'up to date', drift: false });
  const failed = (id: string) => {
    const r = results.get(id);
    return r !== undefined && (r.status === 'Failed' || r.status === 'Skipped');
  };
  const changed = new Set<string>();

  for (const change of plan.changes) {
    const rlog = log.child({ resource: change.id });
    const reason = change.reasons.join('; ');
    const record = (status: ResourceStatus, message: string, error?: StewardError, owned?: Owned) => {
      results.set(change.id, {
        id: change.id,
        action: change.action,
        status,
        message,
        drift: change.drift,
        ...(error ? { error } : {}),
        ...(owned ? { owned } : {}),
      });
    };
    if (signal.aborted) {
      record(
        'Skipped',
        'agent is stopping; applied next run',
        new StewardError('E_DEPENDENCY_FAILED', 'agent is stopping', { resource: change.id, retry: 'transient' }),
      );
      continue;
    }
    if (change.blocked) {
      rlog.error(
        { action: change.action, reason, code: change.blocked.code, err: change.blocked.message },
        `${change.action} blocked: ${change.blocked.message}`,
      );
      record('Failed', change.blocked.message, change.blocked);
      continue;
    }
    const blockers = change.desired ? prerequisites(change.desired).filter(failed) : [];
    if (blockers.length > 0) {
      const msg = `skipped: ${blockers.join(', ')} failed`;
      rlog.warn({ action: change.action, reason: msg }, msg);
      record('Skipped', msg, new StewardError('E_DEPENDENCY_FAILED', msg, { resource: change.id, retry: 'transient' }));
      continue;
    }
    if (
      change.action === 'restart' &&
      change.desired &&
      !(change.desired.spec.restartOn ?? []).some((t) => changed.has(t))
    ) {
      record('Ready', 'restart not needed: no trigger changed', undefined);
      continue;
    }
    const driver = driverOf(drivers, change.kind)!;
    const started = performance.now();
    try {
      const owned = await driver.apply(change, { revision: plan.revision, signal });
      changed.add(change.id);
      rlog.info(
        { action: change.action, reason, drift: change.drift, ms: Math.round(performance.now() - started) },
        `${change.action} ${change.id}: ${reason}`,
      );
      record(
        change.action === 'delete' && !change.desired ? 'Pruned' : 'Ready',
        `${change.action}: ${reason}`,
        undefined,
        owned,
      );
      await afterChange(results.get(change.id)!);
    } catch (err) {
      const e = toStewardError(err, 'E_INTERNAL', undefined, { resource: change.id });
      rlog.error(
        { action: change.action, reason, code: e.code, err: e.message },
        `${change.action} ${change.id} failed: ${e.message}`,
      );
      record('Failed', e.message, e);
    }
  }
  return results;
}

import { join } from 'node:path';
import type { AgentConfig } from '../config/load.js';
import { acquireLock } from './lock.js';
import { toStewardError } from '../errors.js';
import { readJson } from '../host/fs.js';
import type { Logger } from '../log.js';
import { matchesSchema } from '../manifest/schema.js';
import { loadState, saveState } from '../reconcile/state.js';
import type { GitRepo } from '../source/repo.js';
import type { HostStatus } from '../types/host-status.js';
import { hostBranch } from '../status/fleet.js';
import { publishStatus } from '../status/publish.js';

/** How long a stopping agent may spend telling the status branch (systemd waits 90 s by default). */
export const STOP_REPORT_MS = 5000;

/**
 * The newest report with phase Offline: the agent stopped (the service was stopped or the host
 * is shutting down), and nothing enforces the host until it starts again. Everything else is the
 * last run's, so an operator still sees what the host was running.
 */
export function stoppedDocument(last: HostStatus, now: Date): HostStatus {
  const at = now.toISOString();
  const ready = {
    type: 'Ready',
    status: 'Unknown',
    reason: 'AgentStopped',
    message: `steward stopped at ${at}; resources as of its last run`,
    lastTransitionTime: at,
  } as const;
  return {
    ...last,
    phase: 'Offline',
    updatedAt: at,
    conditions: [...last.conditions.filter((c) => c.type !== 'Ready'), ready],
  };
}

/**
 * Called by the daemon after its last run (SIGTERM). Pushes the Offline document, within
 * STOP_REPORT_MS and only when no other run holds the host (a `steward once`). The outbox keeps
 * the last run's report, and the state marks it as not on the branch, so the first run after
 * the next start pushes it even when nothing changed. Never throws: stopping must not fail.
 */
export async function reportStopped(config: AgentConfig, repo: GitRepo, log: Logger): Promise<void> {
  if (!config.status.enabled) return;
  const last = await readJson(join(config.stateDir, 'status.json')).catch(() => undefined);
  if (!matchesSchema<HostStatus>('host-status', last)) return;
  const release = await acquireLock(config.stateDir, 'run', 1000).catch(() => undefined);
  if (!release) {
    log.warn('another run holds this host; Offline not reported');
    return;
  }
  try {
    const doc = stoppedDocument(last, new Date());
    const res = await publishStatus(repo, hostBranch(config.status.branch, config.host), doc, log, {
      own: true,
      deadlineMs: STOP_REPORT_MS,
      historyLimit: config.status.historyLimit,
    });
    const state = await loadState(config.stateDir);
    if (state.report) {
      state.report.pushed = false;
      await saveState(config.stateDir, state);
    }
    log.info(
      { commit: res.commit },
      `status ${res.outcome} to ${hostBranch(config.status.branch, config.host)}: Offline`,
    );
  } catch (err) {
    const e = toStewardError(err, 'E_STATUS_PUSH');
    log.warn({ code: e.code }, `Offline not reported: ${e.message}`);
  } finally {
    await release();
  }
}

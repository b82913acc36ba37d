import type { GitRepo } from '../source/repo.js';
import type { HostStatus } from '../types/host-status.js';

export interface FleetRow {
  host: string;
  phase: HostStatus['phase'];
  appliedRevision: string | null;
  updatedAt: string;
  ageSeconds: number;
  stale: boolean;
  failing: string[];
  doc: HostStatus;
}

/** Reads every hosts/<host>/status.json at the status branch's tip (fetched shallowly). */
export async function readFleet(
  repo: GitRepo,
  branch: string,
  now: Date,
): Promise<{ tip?: string; rows: FleetRow[]; unreadable: Array<{ host: string; reason: string }> }> {
  let tip = await repo.remoteHead(branch);
  if (!tip) return { rows: [], unreadable: [] };
  // The branch may move between the two requests: read what was fetched.
  if (!(await repo.hasCommit(tip))) tip = await repo.fetch(branch);
  const rows: FleetRow[] = [];
  const unreadable: Array<{ host: string; reason: string }> = [];
  let hosts: Array<{ path: string; oid: string; type: string }> = [];
  try {
    const dir = await repo.objects.resolvePath(tip, 'hosts');
    if (dir?.type === 'tree') hosts = await repo.objects.readTree(dir.oid);
  } catch {
    return { tip, rows, unreadable };
  }
  for (const h of hosts) {
    if (h.type !== 'tree') continue;
    try {
      const file = (await repo.objects.readTree(h.oid)).find((e) => e.path === 'status.json' && e.type === 'blob');
      if (!file) throw new Error('no status.json');
      const doc = asStatusDocument(JSON.parse((await repo.objects.readBlob(file.oid)).toString('utf8')), h.path);
      const ageSeconds = Math.max(0, Math.round((now.getTime() - Date.parse(doc.updatedAt)) / 1000));
      rows.push({
        host: doc.host,
        phase: doc.phase,
        appliedRevision: doc.appliedRevision,
        updatedAt: doc.updatedAt,
        ageSeconds,
        stale: ageSeconds > 3 * doc.heartbeatSeconds,
        failing: Object.entries(doc.resources ?? {})
          .filter(([, r]) => r?.status === 'Failed' || r?.status === 'Skipped')
          .map(([id]) => id),
        doc,
      });
    } catch (err) {
      unreadable.push({ host: h.path, reason: (err as Error).message });
    }
  }
  rows.sort((a, b) => a.host.localeCompare(b.host));
  return { tip, rows, unreadable };
}

const isRecord = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
const PHASES = new Set(['Converged', 'Progressing', 'Degraded', 'Failed', 'Invalid', 'Offline', 'Suspended']);

/**
 * Another host's document, checked before it is used: the fields `steward status` and stale
 * detection read must have their types (a host may run another agent version, so fields this
 * one does not know are let through). Throws naming what is wrong.
 */
function asStatusDocument(v: unknown, dir: string): HostStatus {
  const d = v as Record<string, unknown> | null;
  const problem =
    !d || typeof d !== 'object' || Array.isArray(d)
      ? 'not a JSON object'
      : d.host !== dir
        ? `host ${JSON.stringify(d.host)} is not its folder's`
        : typeof d.phase !== 'string' || !PHASES.has(d.phase)
          ? 'no known phase'
          : typeof d.updatedAt !== 'string' || Number.isNaN(Date.parse(d.updatedAt))
            ? 'no updatedAt time'
            : typeof d.heartbeatSeconds !== 'number' || !(d.heartbeatSeconds > 0)
              ? 'no heartbeatSeconds'
              : d.appliedRevision !== null && typeof d.appliedRevision !== 'string'
                ? 'appliedRevision is neither a commit nor null'
                : !isRecord(d.resources) || !isRecord(d.labels)
                  ? 'resources or labels is not an object'
                  : !Array.isArray(d.errors)
                    ? 'errors is not a list'
                    : undefined;
  if (problem) throw new Error(problem);
  return d as unknown as HostStatus;
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

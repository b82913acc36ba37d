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
): Promise<{ tip?: string; rows: FleetRow[]; unreadable: string[] }> {
  let tip = await repo.remoteHead(branch);
  if (!tip) return { rows: [], unreadable: [] };
  // The branch may move between the two requests: read what was fetched.
  if (!(await repo.hasCommit(tip))) tip = await repo.fetch(branch);
  const rows: FleetRow[] = [];
  const unreadable: string[] = [];
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
      const doc = JSON.parse((await repo.objects.readBlob(file.oid)).toString('utf8')) as HostStatus;
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
    } catch {
      unreadable.push(h.path);
    }
  }
  rows.sort((a, b) => a.host.localeCompare(b.host));
  return { tip, rows, unreadable };
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

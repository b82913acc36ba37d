import { parseCommit, parseTree, type TreeEntry } from '../source/objects.js';
import type { GitObject } from '../source/pack.js';
import type { GitRepo } from '../source/repo.js';
import type { HostStatus } from '../types/host-status.js';
import { compareText } from '../order.js';

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

/**
 * The status layout: every host reports on its own branch, `<status.branch>-by-host/<host>`
 * (hosts never contend for a ref, and a report is one request), holding
 * `hosts/<host>/status.json` as the single shared branch `<status.branch>` of earlier versions
 * did. The shared branch is still read, so a fleet of mixed versions shows every host.
 */
export const hostBranch = (statusBranch: string, host: string): string => `${statusBranch}-by-host/${host}`;

/** The most object bytes a fleet read holds in memory: 10,000 hosts take about 12 MB. */
const KEEP_BYTES = 64 * 1024 * 1024;

/**
 * Reads the fleet: one ls-refs for every branch under `refs/heads/<branch>` (the host branches
 * and the shared one), one fetch of all their tips at depth 1, then each document: from the
 * objects the fetch kept in memory as it indexed the pack, else from the store.
 * With `host`, only that host's branch (and the shared one) is asked for. A host found in both
 * layouts shows its newer report.
 */
export async function readFleet(
  repo: GitRepo,
  branch: string,
  now: Date,
  opts: { host?: string; keepBytes?: number; cache?: FleetCache } = {},
): Promise<{ tip?: string; rows: FleetRow[]; unreadable: Array<{ host: string; reason: string }> }> {
  const wanted = await wantedBranches(repo, branch, opts.host);
  if (wanted.size === 0) return { rows: [], unreadable: [] };
  const { cache } = opts;
  // Only the tips that moved since the cache saw them are fetched and read again.
  const moved = new Map([...wanted].filter(([name, oid]) => cache?.get(name)?.oid !== oid));
  const read = moved.size > 0 ? await fetchTips(repo, moved, opts.keepBytes ?? KEEP_BYTES) : undefined;
  const found = new Map<string, Found>();
  for (const [name, oid] of wanted) {
    const own = name !== branch;
    const one = own ? name.slice(`${branch}-by-host/`.length) : opts.host;
    let docs = moved.has(name) ? undefined : cache?.get(name)?.docs;
    if (!docs) {
      docs = await readDocuments(read!, oid, one, own, now);
      cache?.set(name, { oid, docs });
    }
    for (const doc of docs) {
      const got = doc.row ? { host: doc.host, row: rowOf(doc.row.doc, now) } : doc; // ages move with `now`
      const prior = found.get(got.host);
      // The newer report wins (a host that moved to its own branch left an older one behind).
      if (!prior?.row || (got.row && got.row.updatedAt > prior.row.updatedAt)) found.set(got.host, got);
    }
  }
  if (cache) for (const name of cache.keys()) if (!wanted.has(name)) cache.delete(name);
  const rows = [...found.values()].flatMap((f) => (f.row ? [f.row] : []));
  const unreadable = [...found.entries()].flatMap(([host, f]) => (f.row ? [] : [{ host, reason: f.reason! }]));
  rows.sort((a, b) => compareText(a.host, b.host));
  return { tip: wanted.get(branch), rows, unreadable };
}

type Found = { host: string; row?: FleetRow; reason?: string };

/**
 * What a reader that polls keeps between fleet reads (the rollout gate of a waiting host): the
 * documents each status branch had at its tip, so that an unchanged branch is neither fetched
 * nor parsed again.
 */
export type FleetCache = Map<string, { oid: string; docs: Found[] }>;

/** The status branches and their tips, in one ls-refs (see readFleet). */
async function wantedBranches(repo: GitRepo, branch: string, host: string | undefined): Promise<Map<string, string>> {
  const shared = `refs/heads/${branch}`;
  const prefix = `refs/heads/${hostBranch(branch, host ?? '')}`;
  // One ls-refs: every branch under the name; with --host only that host's (the shared branch of
  // earlier versions is asked for only when the host has no branch of its own: its prefix would
  // match every host's).
  const refs = await repo.remoteRefs(host ? prefix : shared);
  const wanted = new Map<string, string>();
  for (const [ref, oid] of refs)
    if (ref === shared || (host ? ref === prefix : ref.startsWith(`${shared}-by-host/`)))
      wanted.set(ref.slice('refs/heads/'.length), oid);
  if (host && wanted.size === 0) {
    const legacy = (await repo.remoteRefs(shared)).get(shared);
    if (legacy) wanted.set(branch, legacy);
  }
  return wanted;
}

/** Fetches the tips at depth 1; returns a reader of their objects, from memory where it could keep them. */
async function fetchTips(
  repo: GitRepo,
  tips: Map<string, string>,
  keepBytes: number,
): Promise<(oid: string, type: GitObject['type']) => Promise<Buffer>> {
  // What indexing hands over is kept up to a budget (a hostile pack of deltas can expand to
  // 64 times source.maxPackSize); past it, objects are read back from the store one at a time.
  const kept = new Map<string, GitObject>();
  let keptBytes = 0;
  await repo.fetchCommits(tips, (oid, obj) => {
    if (keptBytes + obj.data.length > keepBytes) return;
    keptBytes += obj.data.length;
    kept.set(oid, obj);
  });
  return async (oid, type) => {
    const obj = kept.get(oid) ?? (await repo.objects.read(oid));
    if (obj.type !== type) throw new Error(`object ${oid} is a ${obj.type}, not a ${type}`);
    return obj.data;
  };
}

/** The documents under hosts/ at one commit: every host's, or only `host`'s (on its own branch it must be there). */
async function readDocuments(
  read: (oid: string, type: GitObject['type']) => Promise<Buffer>,
  commit: string,
  host: string | undefined,
  own: boolean,
  now: Date,
): Promise<Array<{ host: string; row?: FleetRow; reason?: string }>> {
  const tree = async (oid: string) => parseTree(oid, await read(oid, 'tree'));
  let hosts: TreeEntry[] = [];
  try {
    const root = await tree(parseCommit(commit, await read(commit, 'commit')).tree);
    const dir = root.find((e) => e.path === 'hosts');
    if (dir?.type === 'tree') hosts = await tree(dir.oid);
  } catch {
    return host && own ? [{ host, reason: 'no hosts/ folder on its branch' }] : [];
  }
  const out: Array<{ host: string; row?: FleetRow; reason?: string }> = [];
  for (const h of hosts) {
    if (h.type !== 'tree' || (host !== undefined && h.path !== host)) continue;
    try {
      const file = (await tree(h.oid)).find((e) => e.path === 'status.json' && e.type === 'blob');
      if (!file) throw new Error('no status.json');
      const doc = asStatusDocument(JSON.parse((await read(file.oid, 'blob')).toString('utf8')), h.path);
      out.push({ host: h.path, row: rowOf(doc, now) });
    } catch (err) {
      out.push({ host: h.path, reason: (err as Error).message });
    }
  }
  if (host !== undefined && own && out.length === 0)
    out.push({ host, reason: `no hosts/${host}/status.json on its branch` });
  return out;
}

function rowOf(doc: HostStatus, now: Date): FleetRow {
  const ageSeconds = Math.max(0, Math.round((now.getTime() - Date.parse(doc.updatedAt)) / 1000));
  return {
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
  };
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

import { join } from 'node:path';
import { NOTIFY_EVENTS } from '../config/load.js';
import { rm } from '../files.js';
import { loadFingerprint } from '../host/fingerprint.js';
import { readJson, writeJsonAtomic } from '../host/fs.js';
import { MAX_QUEUED, type Notice } from '../status/notify.js';
import type { AgentContext } from './context.js';
import { errnoOf } from './record.js';

/**
 * Notifications a process could not deliver before it exited (`steward once` from a timer gives
 * them 5 s, a stop a few), kept in stateDir/notify.json for the next process to send first: a
 * receiver that was down for a minute still hears that the host failed. A receiver is known there
 * by a fingerprint of its URL (a webhook URL is a secret); one no longer in the config has its
 * notices dropped, and a notice older than a day is dropped rather than told late.
 */
const FILE = 'notify.json';
const MAX_AGE_MS = 24 * 3600_000;

interface Kept {
  receiver: string;
  notices: Notice[];
}

/** At exit: what the notifier still holds, added to what another process left meanwhile. */
export async function keepUndelivered(ctx: AgentContext): Promise<void> {
  const { notifier } = ctx;
  if (!notifier) return;
  const file = join(ctx.config.stateDir, FILE);
  try {
    const fp = await loadFingerprint(ctx.config.stateDir);
    const kept = merge(
      await readKept(file),
      notifier.undelivered().map(({ url, notices }) => ({ receiver: fp.of(url), notices })),
    );
    if (kept.length > 0) await writeJsonAtomic(file, { receivers: kept });
    else await rm(file, { force: true });
    const count = kept.reduce((n, k) => n + k.notices.length, 0);
    if (count > 0) ctx.log.warn(`${count} notification(s) kept in ${file} for the next run`);
  } catch (err) {
    ctx.log.warn(`cannot write ${file}: ${errnoOf(err)}`);
  }
}

/** At start: queues what an earlier process left, ahead of this one's notices, and removes the file. */
export async function resumeUndelivered(ctx: AgentContext, now = Date.now()): Promise<void> {
  const { notifier } = ctx;
  if (!notifier) return;
  const file = join(ctx.config.stateDir, FILE);
  try {
    const kept = await readKept(file);
    if (kept.length === 0) return;
    const fp = await loadFingerprint(ctx.config.stateDir);
    const urls = new Map(notifier.urls().map((url) => [fp.of(url), url]));
    let dropped = 0;
    const queued: Array<{ url: string; notices: Notice[] }> = [];
    for (const k of kept) {
      const url = urls.get(k.receiver);
      const fresh = url ? k.notices.filter((n) => now - Date.parse(n.at) < MAX_AGE_MS) : [];
      dropped += k.notices.length - fresh.length;
      if (url && fresh.length > 0) queued.push({ url, notices: fresh });
    }
    notifier.resume(queued);
    await rm(file, { force: true });
    const count = queued.reduce((n, q) => n + q.notices.length, 0);
    ctx.log.info(
      `${count} notification(s) an earlier run could not deliver are sent first` +
        (dropped > 0 ? `; ${dropped} dropped (older than a day, or their receiver is gone)` : ''),
    );
  } catch (err) {
    ctx.log.warn(`cannot read ${file}: ${errnoOf(err)}`);
  }
}

/** How many notices wait in stateDir/notify.json (steward doctor). */
export async function pendingNotices(stateDir: string): Promise<number> {
  return (await readKept(join(stateDir, FILE))).reduce((n, k) => n + k.notices.length, 0);
}

/** The file's receivers and their notices; what is not a well-formed notice is left out. */
async function readKept(file: string): Promise<Kept[]> {
  const doc = await readJson(file).catch(() => undefined);
  const list = (doc as { receivers?: unknown } | undefined)?.receivers;
  if (!Array.isArray(list)) return [];
  return list.flatMap((k: unknown) => {
    const { receiver, notices } = (k ?? {}) as { receiver?: unknown; notices?: unknown };
    if (typeof receiver !== 'string' || !Array.isArray(notices)) return [];
    return [{ receiver, notices: notices.filter(isNotice).slice(-MAX_QUEUED).map(noticeOf) }];
  });
}

/** Per receiver, the older notices first; at most MAX_QUEUED each (the newest kept). */
function merge(a: Kept[], b: Kept[]): Kept[] {
  const by = new Map<string, Notice[]>();
  for (const k of [...a, ...b]) by.set(k.receiver, [...(by.get(k.receiver) ?? []), ...k.notices].slice(-MAX_QUEUED));
  return [...by].filter(([, n]) => n.length > 0).map(([receiver, notices]) => ({ receiver, notices }));
}

/** The notice's own fields only: whatever else the file holds is not sent on to a receiver. */
function noticeOf(n: Notice): Notice {
  const failed = n.failed.map((f) => ({
    id: f.id,
    ...(f.code !== undefined ? { code: f.code } : {}),
    message: f.message,
  }));
  const { event, host, phase, previousPhase, revision, appliedRevision, reason, message, at } = n;
  return { event, host, phase, previousPhase, revision, appliedRevision, reason, message, failed, at };
}

/** Every field render() reads, of the type it expects: a damaged file cannot make delivery throw. */
function isNotice(n: unknown): n is Notice {
  if (typeof n !== 'object' || n === null) return false;
  const o = n as Record<string, unknown>;
  const text = (k: string) => typeof o[k] === 'string';
  const textOrNull = (k: string) => o[k] === null || typeof o[k] === 'string';
  return (
    (NOTIFY_EVENTS as readonly unknown[]).includes(o.event) &&
    ['host', 'phase', 'reason', 'message', 'at'].every(text) &&
    ['previousPhase', 'revision', 'appliedRevision'].every(textOrNull) &&
    !Number.isNaN(Date.parse(o.at as string)) &&
    Array.isArray(o.failed) &&
    o.failed.every((f: unknown) => {
      const r = (f ?? {}) as Record<string, unknown>;
      return (
        typeof r.id === 'string' &&
        typeof r.message === 'string' &&
        (r.code === undefined || typeof r.code === 'string')
      );
    })
  );
}

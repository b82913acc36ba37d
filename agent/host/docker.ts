import { StewardError } from '../errors.js';
import { Engine } from './engine.js';

export type Docker = Engine;

/** A Docker client on the engine's socket. No API version is pinned: the engine's own is used. */
export function createDocker(socketPath: string): Docker {
  return new Engine(socketPath, 120_000);
}

/** HTTP status of an engine error, if it has one. */
export function dockerStatus(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Runs a call whose "already so" answers (304 not modified, 404 gone) mean success. */
export async function idempotent<T>(call: () => Promise<T>, ok: number[] = [304, 404]): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (ok.includes(dockerStatus(err) ?? -1)) return undefined;
    throw err;
  }
}

/** The engine's message without the "(HTTP code 409)" prefix. */
export function dockerMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; reason?: string; message?: string; code?: string };
  if (e?.code === 'ENOENT' || e?.code === 'ECONNREFUSED' || e?.code === 'EACCES')
    return `Docker engine not reachable (${e.code})`;
  return e?.json?.message ?? e?.message ?? String(err);
}

/** Connection-level failures: the engine is down or restarting; the next run retries. */
export function isEngineDown(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'EACCES';
}

export function engineDown(err: unknown, socket: string): StewardError {
  return new StewardError(
    'E_DOCKER_UNREACHABLE',
    `cannot reach the Docker engine at ${socket}: ${dockerMessage(err)}`,
    { retry: 'transient', cause: err },
  );
}

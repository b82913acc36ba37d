import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { loadConfig } from '../../agent/config/load.js';
import { createLogger, type Logger } from '../../agent/log.js';
import { createContext } from '../../agent/reconcile/context.js';
import { runOnce, type AgentContext, type RunReport } from '../../agent/reconcile/run.js';
import type { HttpStats } from '../../agent/source/http.js';
import { Writable } from 'node:stream';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** A short unique suffix per test run: containers, hosts and state dirs never collide with leftovers. */
export const uid = (): string => randomBytes(3).toString('hex');

/** A command that runs forever and stops at once on SIGTERM (a bare sleep would wait 10 s). */
export const SLEEPER = ['sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"];

export interface TestAgent {
  host: string;
  stateDir: string;
  configFile: string;
  ctx: AgentContext;
  logs: Array<Record<string, unknown>>;
  stats: HttpStats;
  /** One run; `now` is its clock (a test moves past a backoff instead of sleeping through it). */
  once(opts?: { apply?: boolean; now?: () => Date }): Promise<RunReport>;
  /** Containers labelled for this host. */
  containers(): Promise<Docker.ContainerInfo[]>;
  cleanup(): Promise<void>;
}

/** Captures the agent's JSON log lines in memory. */
export function memoryLogger(into: Array<Record<string, unknown>>): Logger {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) into.push(JSON.parse(line));
      cb();
    },
  });
  return createLogger('debug', sink as never);
}

/** Writes a config file for a fresh host and builds the agent in-process. */
export async function makeAgent(opts: {
  url: string;
  host?: string;
  paths?: string[];
  extra?: string;
  /** The labels line's value (YAML flow mapping); `{ site: test, role: kiosk }` by default. */
  labels?: string;
  sourceExtra?: string;
  tokenFile?: string;
  stateDir?: string;
  timeout?: string;
  interval?: string;
}): Promise<TestAgent> {
  const host = opts.host ?? `t-${uid()}`;
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), `steward-state-${host}-`)));
  const configFile = join(await mkdtemp(join(tmpdir(), `steward-etc-${host}-`)), 'agent.yaml');
  const lines = [
    `host: ${host}`,
    `labels: ${opts.labels ?? '{ site: test, role: kiosk }'}`,
    'source:',
    `  url: ${opts.url}`,
    `  paths: [${(opts.paths ?? ['hosts/${host}']).map((p) => JSON.stringify(p)).join(', ')}]`,
    `  interval: ${opts.interval ?? '1s'}`,
    `  timeout: ${opts.timeout ?? '5s'}`,
    ...(opts.tokenFile ? ['  auth:', `    tokenFile: ${opts.tokenFile}`] : []),
    ...(opts.sourceExtra ? [opts.sourceExtra.replace(/\n$/, '')] : []),
    `stateDir: ${stateDir}`,
    opts.extra ?? '',
  ];
  await writeFile(configFile, lines.join('\n') + '\n');
  const config = await loadConfig(configFile);
  const logs: Array<Record<string, unknown>> = [];
  const stats: HttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  const ctx = await createContext(config, memoryLogger(logs), { stats, facts: false });
  const list = () => docker.listContainers({ all: true, filters: { label: [`steward.host=${host}`] } });
  return {
    host,
    stateDir,
    configFile,
    ctx,
    logs,
    stats,
    once: (o) =>
      runOnce(ctx, {
        apply: o?.apply ?? true,
        signal: new AbortController().signal,
        ...(o?.now ? { now: o.now } : {}),
      }),
    containers: list,
    async cleanup() {
      for (const c of await list())
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
    },
  };
}

/** Removes containers by name, ignoring those already gone. */
export async function removeContainers(...names: string[]): Promise<void> {
  for (const n of names)
    await docker
      .getContainer(n)
      .remove({ force: true })
      .catch(() => undefined);
}

/** A Container manifest. */
export function containerDoc(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify(
    { apiVersion: 'steward/v1', kind: 'Container', metadata: { name }, spec: { command: SLEEPER, ...spec } },
    null,
    2,
  );
}

/** A File manifest named `name` writing `content` to `path`. */
export function fileDoc(path: string, content: string, name = 'motd'): string {
  return JSON.stringify({ apiVersion: 'steward/v1', kind: 'File', metadata: { name }, spec: { path, content } });
}

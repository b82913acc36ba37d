import { createHash } from 'node:crypto';
import { Fingerprint } from '../host/fingerprint.js';
import type { ContainerCreateOptions } from 'dockerode';
import type { ContainerSpec } from '../types/container.js';
import { parseDuration } from '../duration.js';

/** The spec fields that shape a container; a change in any of them recreates it. */
export const SHAPING_FIELDS = [
  'image',
  'command',
  'entrypoint',
  'env',
  'ports',
  'volumes',
  'restart',
  'user',
  'workingDir',
  'labels',
  'healthcheck',
  'memory',
  'cpus',
  'networkMode',
] as const;
export type ShapingField = (typeof SHAPING_FIELDS)[number];

export const LABEL = {
  managed: 'steward.managed',
  host: 'steward.host',
  id: 'steward.id',
  hash: 'steward.hash',
  fields: 'steward.fields',
  revision: 'steward.revision',
} as const;

/** JSON with sorted keys, so equal values always hash equally. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

export function sha(text: string, length = 16): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** The spec with defaults filled in, so `restart` omitted and `restart: unless-stopped` are equal. */
function normalized(spec: ContainerSpec): Record<ShapingField, unknown> {
  const out = {} as Record<ShapingField, unknown>;
  for (const f of SHAPING_FIELDS) out[f] = spec[f];
  out.restart = spec.restart ?? 'unless-stopped';
  return out;
}

/**
 * A short keyed fingerprint per shaping field. Stored on the container as a label, it lets a
 * later run say which fields changed without storing values (env may hold secrets; the key is
 * the host's, so a label cannot be brute-forced back into a value). Without `fp`: the plain
 * sha256 of earlier versions, to recognise their labels.
 */
export function fieldHashes(spec: ContainerSpec, fp?: Fingerprint): Record<string, string> {
  const n = normalized(spec);
  const out: Record<string, string> = {};
  for (const f of SHAPING_FIELDS)
    if (n[f] !== undefined) out[f] = fp ? fp.of(canonical(n[f]), 8) : Fingerprint.legacy(canonical(n[f]), 8);
  return out;
}

export function specHash(spec: ContainerSpec, fp: Fingerprint): string {
  return fp.of(canonical(normalized(spec)));
}

/** Parses "[ip:][hostPort:]containerPort[/proto]" (the schema has checked the form). */
export function parsePort(text: string): { key: string; hostIp: string; hostPort: string } {
  const [addr, proto = 'tcp'] = text.split('/') as [string, string?];
  let rest = addr;
  let hostIp = '';
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1]!;
    rest = v6[2]!;
  }
  const parts = rest.split(':');
  if (!v6 && parts.length === 3) hostIp = parts.shift()!;
  const containerPort = parts.pop()!;
  const hostPort = parts.pop() ?? '';
  return { key: `${containerPort}/${proto}`, hostIp, hostPort };
}

/** "256m" -> 268435456 */
export function parseMemory(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmg]?)$/i.exec(text);
  if (!m) throw new Error(`not a memory size: ${text}`);
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Math.round(Number(m[1]) * unit);
}

const NS_PER_MS = 1_000_000;

/** The Docker Engine create request for a desired container. Pure. */
export function toCreateOptions(
  name: string,
  id: string,
  host: string,
  revision: string,
  spec: ContainerSpec,
  fp: Fingerprint,
): ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of spec.ports ?? []) {
    const { key, hostIp, hostPort } = parsePort(p);
    exposed[key] = {};
    if (hostPort !== '' || hostIp !== '') (bindings[key] ??= []).push({ HostIp: hostIp, HostPort: hostPort });
  }
  const hc = spec.healthcheck;
  const restart = spec.restart ?? 'unless-stopped';
  const userLabels = Object.fromEntries(
    Object.entries(spec.labels ?? {}).filter((e): e is [string, string] => e[1] !== undefined),
  );
  return {
    name,
    Image: spec.image,
    ...(spec.command ? { Cmd: spec.command } : {}),
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v ?? ''}`),
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
    ExposedPorts: exposed,
    Labels: {
      ...userLabels,
      [LABEL.managed]: 'true',
      [LABEL.host]: host,
      [LABEL.id]: id,
      [LABEL.hash]: specHash(spec, fp),
      [LABEL.fields]: JSON.stringify(fieldHashes(spec, fp)),
      [LABEL.revision]: revision,
    },
    ...(hc ? { Healthcheck: toHealthcheck(hc) } : {}),
    HostConfig: {
      Binds: spec.volumes ?? [],
      PortBindings: bindings,
      RestartPolicy: { Name: restart === 'no' ? '' : restart, MaximumRetryCount: 0 },
      ...(spec.memory ? { Memory: parseMemory(spec.memory) } : {}),
      ...(spec.cpus ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
      ...(spec.networkMode ? { NetworkMode: spec.networkMode } : {}),
    },
  };
}

/** A spec's healthcheck as the engine takes it: a string is a shell command, durations in ns. */
function toHealthcheck(hc: NonNullable<ContainerSpec['healthcheck']>) {
  return {
    Test:
      typeof hc.test === 'string'
        ? ['CMD-SHELL', hc.test]
        : ['CMD', 'CMD-SHELL', 'NONE'].includes(hc.test[0]!)
          ? hc.test
          : ['CMD', ...hc.test],
    ...(hc.interval ? { Interval: parseDuration(hc.interval) * NS_PER_MS } : {}),
    ...(hc.timeout ? { Timeout: parseDuration(hc.timeout) * NS_PER_MS } : {}),
    ...(hc.retries ? { Retries: hc.retries } : {}),
    ...(hc.startPeriod ? { StartPeriod: parseDuration(hc.startPeriod) * NS_PER_MS } : {}),
  };
}

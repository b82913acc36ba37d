import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { readFile } from '../files.js';
import type { Docker } from './docker.js';
import type { HostStatus } from '../types/host-status.js';

/**
 * Host facts for the status document, read once at start and reused by every report: the
 * distribution from /etc/os-release, the rest from Node's `os` (the same figures systeminformation
 * gave, without its ~10 MiB of resident modules and the processes it spawns).
 */
export async function collectFacts(docker: Docker | undefined): Promise<HostStatus['facts']> {
  const facts: HostStatus['facts'] = { nodeVersion: process.versions.node, arch: process.arch };
  const os = await osRelease();
  const distro = `${os.NAME ?? ''} ${os.VERSION_ID ?? ''}`.trim();
  if (distro) facts.os = distro;
  facts.kernel = release();
  const model = cpus()[0]?.model.replace(/\s+/g, ' ').trim();
  if (model) facts.cpu = model;
  facts.cpus = availableParallelism();
  facts.memoryBytes = totalmem();
  try {
    if (docker) facts.dockerVersion = (await docker.version()).Version;
  } catch {
    // the engine may be down at start; the report says so elsewhere
  }
  return facts;
}

/** os-release(5): KEY=value lines, values optionally quoted; a host without the file has no `os` fact. */
async function osRelease(): Promise<Record<string, string>> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() =>
    readFile('/usr/lib/os-release', 'utf8').catch(() => ''),
  );
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

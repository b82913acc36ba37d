import si from 'systeminformation';
import type { Docker } from './docker.js';
import type { HostStatus } from '../types/host-status.js';

/**
 * Host facts for the status document. systeminformation spawns processes (some synchronously),
 * so this runs once at start; the result is reused by every report.
 */
export async function collectFacts(docker: Docker | undefined): Promise<HostStatus['facts']> {
  const facts: HostStatus['facts'] = { nodeVersion: process.versions.node, arch: process.arch };
  try {
    const [os, cpu, mem] = await Promise.all([si.osInfo(), si.cpu(), si.mem()]);
    facts.os = `${os.distro} ${os.release}`.trim();
    facts.kernel = os.kernel;
    facts.cpu = `${cpu.manufacturer} ${cpu.brand}`.trim();
    facts.cpus = cpu.cores;
    facts.memoryBytes = mem.total;
  } catch {
    // facts are informative; a host where they cannot be read still reports
  }
  try {
    if (docker) facts.dockerVersion = (await docker.version()).Version;
  } catch {
    // the engine may be down at start; the report says so elsewhere
  }
  return facts;
}

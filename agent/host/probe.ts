import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { Probe } from '../types/container.js';

/** One probe attempt: healthy or not, and why, in words a status reader understands. */
export interface ProbeResult {
  ok: boolean;
  message: string;
}

/**
 * Runs one attempt of an http or tcp probe (exec probes are the driver's: inside a container or
 * on the host). Each attempt ends at `timeoutMs`: a probe that hangs is a failed attempt.
 */
export async function probeOnce(probe: Probe, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  if (probe.http) return httpProbe(probe.http.url, probe.http.status ?? 200, timeoutMs, signal);
  if (probe.tcp) return tcpProbe(probe.tcp.host ?? '127.0.0.1', probe.tcp.port, timeoutMs);
  throw new Error('exec probes are run by the driver');
}

async function httpProbe(url: string, want: number, timeoutMs: number, outer: AbortSignal): Promise<ProbeResult> {
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), outer]);
  const make = url.startsWith('https:') ? (await import('node:https')).request : httpRequest; // TLS only when used
  return new Promise((resolve) => {
    const req = make(url, { method: 'GET', signal }, (res) => {
      res.resume();
      const ok = res.statusCode === want;
      resolve({ ok, message: `GET ${url}: HTTP ${res.statusCode}${ok ? '' : ` (want ${want})`}` });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({
        ok: false,
        message: `GET ${url}: ${signal.aborted ? `no answer within ${timeoutMs}ms` : (err.code ?? err.message)}`,
      }),
    );
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (r: ProbeResult) => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () =>
      done({ ok: false, message: `tcp ${host}:${port}: no answer within ${timeoutMs}ms` }),
    );
    socket.once('connect', () => done({ ok: true, message: `tcp ${host}:${port}: connected` }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done({ ok: false, message: `tcp ${host}:${port}: ${err.code ?? err.message}` }),
    );
  });
}

/** An exec probe on this host: no shell, killed at the deadline. */
export async function hostExecProbe(command: string[], timeoutMs: number): Promise<ProbeResult> {
  const { execFile } = await import('node:child_process'); // loaded by the first exec probe
  return new Promise((resolve) => {
    execFile(command[0]!, command.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string }) | null;
      if (!e) resolve({ ok: true, message: `${command[0]}: exit 0` });
      else if (e.killed) resolve({ ok: false, message: `${command[0]}: no result within ${timeoutMs}ms (killed)` });
      else
        resolve({
          ok: false,
          message: `${command[0]}: ${typeof e.code === 'number' ? `exit ${e.code}` : (e.code ?? e.message)}`,
        });
    });
  });
}

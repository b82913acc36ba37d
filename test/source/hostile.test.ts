import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHostileServer, type Fault } from '../helpers/hostile.js';
import { MAIN as main } from '../helpers/cli.js';

// Faults a real Git server cannot be made to show: answers that never end, packs of junk
// (test/helpers/hostile.ts). The agent runs as the CLI does, in its own process.
const httpModule = fileURLToPath(new URL('../../dist/agent/source/http.js', import.meta.url));

async function agentConfig(url: string, extra = '', interval = '1s'): Promise<{ config: string; stateDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'steward-hostile-'));
  const stateDir = join(dir, 'state');
  const config = join(dir, 'agent.yaml');
  await writeFile(
    config,
    `host: hostile\nsource:\n  url: ${url}\n  interval: ${interval}\n  timeout: 2s\n${extra}stateDir: ${stateDir}\nstatus:\n  enabled: false\n`,
  );
  return { config, stateDir };
}

/** `steward once`, killed after 90 s if it has not ended by itself; peak RSS sampled from /proc. */
function once(
  config: string,
): Promise<{ code: number | null; signal: string | null; ms: number; peakMiB: number; stdout: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [main, 'once', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.resume();
    let peak = 0;
    const sample = setInterval(async () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => ''));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    }, 50);
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (code, signal) => {
      clearInterval(sample);
      clearTimeout(killer);
      resolve({ code, signal, ms: Date.now() - t0, peakMiB: Math.round(peak), stdout });
    });
  });
}

/** Sleeps until the Git backoff that state.json records has ended. */
async function waitOutBackoff(stateDir: string): Promise<void> {
  const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as { source?: { retryAt: string } };
  const wait = state.source ? Date.parse(state.source.retryAt) - Date.now() : 0;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 50));
}

const codes = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { code?: string }).code)
    .filter(Boolean);

async function withServer(fault: Fault, fn: (url: string) => Promise<void>, opts: { limitBytes?: number } = {}) {
  const s = await startHostileServer(fault, opts);
  try {
    await fn(s.url);
  } finally {
    await s.stop();
  }
}

t.test('an ls-refs answer that drips forever ends at the 2 s deadline', (t) =>
  withServer('drip-refs', async (url) => {
    const { config } = await agentConfig(url);
    const r = await once(config);
    t.equal(r.signal, null, 'ended by itself, not killed');
    t.ok(r.ms < 30_000, `ended (${r.ms} ms)`);
    t.ok(codes(r.stdout).includes('E_GIT_TIMEOUT'), 'reported as a timeout');
  }),
);

t.test('the deadline fires while the garbage collector runs all the time (the run signal combined with it)', (t) =>
  withServer('drip-refs', async (url) => {
    // What the daemon does: one client per context with the run's AbortSignal, requests while
    // garbage is collected. AbortSignal.any([AbortSignal.timeout(), outer]) never fired here.
    const script = `
      const { createHttpClient } = await import(${JSON.stringify(httpModule)});
      const outer = new AbortController();
      const http = createHttpClient({ timeoutMs: 1000, signal: outer.signal });
      const gc = setInterval(() => globalThis.gc(), 5);
      const t0 = Date.now();
      try {
        await http.send({ url: ${JSON.stringify(url)} + '/git-upload-pack', method: 'POST', headers: {}, body: Buffer.from('0014command=ls-refs\\n0000') });
        console.log('answered');
      } catch (err) { console.log(err.code, Date.now() - t0); }
      clearInterval(gc);`;
    const out = await new Promise<string>((resolve) => {
      execFile(
        process.execPath,
        ['--expose-gc', '--input-type=module', '-e', script],
        { timeout: 60_000 },
        (_err, stdout) => resolve(stdout),
      );
    });
    const [code, ms] = out.trim().split(' ');
    t.equal(code, 'ETIMEDOUT', `timed out (${out.trim() || 'no output: killed after 60 s'})`);
    t.ok(Number(ms) < 10_000, `at the deadline, not much later (${ms} ms)`);
  }),
);

t.test('an ls-refs answer without end is cut off at the answer limit, with bounded memory', (t) =>
  withServer('endless-refs', async (url) => {
    const { config } = await agentConfig(url);
    const r = await once(config);
    t.equal(r.signal, null, 'ended by itself');
    t.ok(codes(r.stdout).includes('E_GIT_TOO_LARGE'), `cut off (${codes(r.stdout).join(', ')})`);
    t.ok(r.peakMiB < 400, `peak RSS ${r.peakMiB} MiB`);
    t.comment(`endless ls-refs: ended after ${r.ms} ms, peak RSS ${r.peakMiB} MiB`);
  }),
);

t.test('a pack over source.maxPackSize is cut off and leaves nothing in source.git', (t) =>
  withServer('junk-pack', async (url) => {
    // A 4 s interval makes the backoff 2-4 s: long enough that the third run, started right
    // after the second, is surely inside it even on a slow machine.
    const { config, stateDir } = await agentConfig(url, '  maxPackSize: 8MiB\n', '4s');
    for (const run of [1, 2]) {
      if (run === 2) await waitOutBackoff(stateDir); // so run 2 fetches again, not only reports run 1's error
      const r = await once(config);
      t.equal(r.signal, null, `run ${run} ended by itself`);
      t.ok(codes(r.stdout).includes('E_GIT_TOO_LARGE'), `run ${run}: E_GIT_TOO_LARGE (${codes(r.stdout).join(', ')})`);
      t.notMatch(r.stdout, 'next try at', `run ${run} tried the server`);
      t.same(
        await readdir(join(stateDir, 'source.git', 'objects', 'pack')).catch(() => []),
        [],
        `run ${run}: no pack left behind`,
      );
    }
    const held = await once(config);
    t.ok(codes(held.stdout).includes('E_GIT_TOO_LARGE'), 'a run inside the backoff logs the error it holds off for');
    t.match(held.stdout, 'next try at', 'and when it will try again');
  }),
);

t.test(
  'a zip bomb (a 65 KiB pack of a blob that inflates to 64 MiB) is refused before it is inflated, and nothing is kept',
  (t) =>
    withServer('bomb-pack', async (url) => {
      // A 4 s interval makes the backoff 2-4 s: long enough that the third run, started right
      // after the second, is surely inside it even on a slow machine.
      const { config, stateDir } = await agentConfig(url, '  maxPackSize: 8MiB\n', '4s');
      const r = await once(config);
      t.equal(r.signal, null, 'ended by itself');
      t.ok(codes(r.stdout).includes('E_GIT_TOO_LARGE'), `E_GIT_TOO_LARGE (${codes(r.stdout).join(', ')})`);
      t.match(
        r.stdout,
        /67108864 bytes, more than the limit of 8388608 \(source\.maxPackSize\)/,
        'the message names the object size, the limit and the setting',
      );
      t.same(await readdir(join(stateDir, 'source.git', 'objects', 'pack')).catch(() => []), [], 'no pack left behind');
    }),
);

t.test('a pack download is capped at source.maxPackSize, not at the small-answer limit', (t) =>
  withServer(
    'junk-pack',
    async (url) => {
      // 40 MiB of junk under a 64 MiB limit: more than the 16 MiB a ref list may have, so it
      // must be read to its end (and fail as junk), not cut off as "too large".
      const { config, stateDir } = await agentConfig(url, '  maxPackSize: 64MiB\n');
      const r = await once(config);
      t.notOk(codes(r.stdout).includes('E_GIT_TOO_LARGE'), `not cut off (${codes(r.stdout).join(', ')})`);
      t.ok(
        codes(r.stdout).some((c) => c === 'E_GIT_FETCH' || c === 'E_GIT_PROTOCOL'),
        'failed as a bad pack',
      );
      t.same(await readdir(join(stateDir, 'source.git', 'objects', 'pack')).catch(() => []), [], 'no partial pack');
    },
    { limitBytes: 40 * 1024 * 1024 },
  ),
);

t.test('a junk pack within the limit fails the fetch and leaves no pack without its index', (t) =>
  withServer(
    'junk-pack',
    async (url) => {
      const { config, stateDir } = await agentConfig(url);
      const r = await once(config);
      t.equal(r.signal, null, 'ended by itself');
      t.ok(
        codes(r.stdout).some((c) => c === 'E_GIT_FETCH' || c === 'E_GIT_PROTOCOL'),
        `the fetch failed (${codes(r.stdout).join(', ')})`,
      );
      t.same(await readdir(join(stateDir, 'source.git', 'objects', 'pack')).catch(() => []), [], 'no partial pack');
    },
    { limitBytes: 2 * 1024 * 1024 },
  ),
);

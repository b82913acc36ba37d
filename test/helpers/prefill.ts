// Host status branches written straight into a server's bare repository with `git fast-import`,
// as publishStatus would have written them (the real document and commit message, a chain of
// `reports` commits per host with their Steward-Seq), for benchmarks whose fleet is too large to
// publish every earlier report for real on one machine.
import { spawn } from 'node:child_process';
import type { GitRepo } from '../../agent/source/repo.js';
import { hostBranch } from '../../agent/status/fleet.js';
import { commitMessage } from '../../agent/status/publish.js';
import { convergedDoc } from './status.js';

export async function prefillHostBranches(
  bare: string,
  names: string[],
  rev: string,
  reports = 1,
  labelsOf: (name: string) => Record<string, string> = () => ({}),
  /** Replace branches that exist (a new history each), as a host whose store was lost would. */
  force = false,
): Promise<void> {
  const args = ['--git-dir', bare, 'fast-import', '--quiet', ...(force ? ['--force'] : [])];
  const fi = spawn('git', args, { stdio: ['pipe', 'ignore', 'inherit'] });
  const closed = new Promise((r) => fi.on('close', r));
  let mark = 0;
  for (const name of names) {
    for (let seq = 1; seq <= reports; seq++) {
      const at = new Date(Date.now() - (reports - seq + 1) * 60_000);
      const doc = convergedDoc(name, rev, at, { durationMs: seq, labels: labelsOf(name) });
      const text = JSON.stringify(doc, null, 2) + '\n';
      const msg = `${commitMessage(doc)}\nSteward-Seq: ${seq}\n`;
      const when = Math.floor(at.getTime() / 1000);
      const who = `${name} <${name}@steward.invalid> ${when} +0000`;
      const chunk =
        `blob\nmark :${++mark}\ndata ${Buffer.byteLength(text)}\n${text}\n` +
        `commit refs/heads/${hostBranch('steward-status', name)}\n` +
        `author ${who}\ncommitter ${who}\ndata ${Buffer.byteLength(msg)}\n${msg}\n` +
        `M 100644 :${mark} hosts/${name}/status.json\n\n`;
      if (!fi.stdin.write(chunk)) await new Promise((r) => fi.stdin.once('drain', r));
    }
  }
  fi.stdin.end();
  await closed;
}

/**
 * Gives each host's status store what a host that has been reporting for a while holds: its
 * branch's tip commit and trees (copied from the server's repository) as its local head, so its
 * next report is a heartbeat (one request), not a first report.
 */
export async function seedHostStores(bare: string, hosts: Array<{ name: string; repo: GitRepo }>): Promise<void> {
  const cat = spawn('git', ['--git-dir', bare, 'cat-file', '--batch'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: Buffer[] = [];
  cat.stdout.on('data', (c: Buffer) => out.push(c));
  const closed = new Promise((r) => cat.on('close', r));
  for (const { name } of hosts) {
    const ref = `refs/heads/${hostBranch('steward-status', name)}`;
    for (const spec of ['', '^{tree}', ':hosts', `:hosts/${name}`]) cat.stdin.write(`${ref}${spec}\n`);
  }
  cat.stdin.end();
  await closed;
  const all = Buffer.concat(out);
  let at = 0;
  for (const { name, repo } of hosts) {
    let tip = '';
    for (let k = 0; k < 4; k++) {
      const nl = all.indexOf(10, at);
      const [oid, type, size] = all.subarray(at, nl).toString().split(' ');
      const data = all.subarray(nl + 1, nl + 1 + Number(size));
      at = nl + 1 + Number(size) + 1;
      if ((await repo.objects.write(type as 'commit' | 'tree', data)) !== oid)
        throw new Error(`seed of ${name}: ${oid}`);
      if (k === 0) tip = oid!;
    }
    await repo.setLocalHead(hostBranch('steward-status', name), tip);
  }
}

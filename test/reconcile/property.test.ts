import t from 'tap';
import fc from 'fast-check';
import { lstat, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { makeAgent } from '../helpers/agent.js';
import { createFleetRepo, startGitServer } from '../helpers/git.js';

/** Every regular file below `root` with its content and mode: what a user would compare. */
async function snapshot(root: string, dir = root, out: Record<string, string> = {}): Promise<Record<string, string>> {
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const st = await lstat(path);
    if (st.isDirectory()) await snapshot(root, path, out);
    else out[relative(root, path)] = `${(st.mode & 0o777).toString(8)} ${await readFile(path, 'utf8')}`;
  }
  return out;
}

const fileArb = fc.record({
  name: fc.constantFrom('a', 'b', 'c', 'sub/d', 'sub/deeper/e'),
  content: fc.constantFrom('', 'one\n', 'two\n', 'x'.repeat(100)),
  mode: fc.constantFrom('0644', '0600', '0640'),
  absent: fc.boolean(),
});
const bundleArb = fc.uniqueArray(fileArb, { selector: (f) => f.name, maxLength: 4 });
type Bundle = Array<{ name: string; content: string; mode: string; absent: boolean }>;

t.test('applying A then B leaves the host as applying B fresh; applying B again changes nothing', async (t) => {
  const server = await startGitServer();
  t.teardown(() => server.stop());
  const fleet = await createFleetRepo(server, 'fleet');
  const docs = (root: string, b: Bundle) =>
    b
      .map((f) =>
        JSON.stringify({
          apiVersion: 'steward/v1',
          kind: 'File',
          metadata: { name: f.name.replace(/\//g, '-') },
          spec: f.absent
            ? { path: join(root, f.name), ensure: 'absent' }
            : { path: join(root, f.name), content: f.content, mode: f.mode },
        }),
      )
      .join('\n---\n') || '# empty\n';
  let cases = 0;
  await fc.assert(
    fc.asyncProperty(bundleArb, bundleArb, async (A, B) => {
      cases += 1;
      const [r1, r2] = [await mkdtemp(join(tmpdir(), 'steward-prop-')), await mkdtemp(join(tmpdir(), 'steward-prop-'))];
      const extra = (root: string) =>
        `files:\n  roots: [${root}]\nprune:\n  allowEmpty: true\nstatus:\n  enabled: false\n`;
      const [x, y] = [
        await makeAgent({ url: server.url('fleet'), extra: extra(r1) }),
        await makeAgent({ url: server.url('fleet'), extra: extra(r2) }),
      ];
      await fleet.commit({ [`hosts/${x.host}/f.yaml`]: docs(r1, A) });
      await x.once();
      await fleet.commit({ [`hosts/${x.host}/f.yaml`]: docs(r1, B), [`hosts/${y.host}/f.yaml`]: docs(r2, B) });
      const rx = await x.once();
      const ry = await y.once();
      if (rx.outcome.phase !== 'Converged' || ry.outcome.phase !== 'Converged')
        throw new Error(`not converged: ${rx.outcome.phase}/${ry.outcome.phase}`);
      const [s1, s2] = [await snapshot(r1), await snapshot(r2)];
      if (JSON.stringify(s1) !== JSON.stringify(s2))
        throw new Error(`A then B: ${JSON.stringify(s1)}\nB fresh: ${JSON.stringify(s2)}`);
      const again = await y.once();
      const acted = [...again.outcome.results.values()].filter((r) => r.action !== 'none');
      if (acted.length > 0) throw new Error(`a second apply changed ${acted.map((r) => r.id).join(', ')}`);
    }),
    { numRuns: 15, endOnFailure: true },
  );
  t.equal(cases >= 15, true, `${cases} cases`);
});

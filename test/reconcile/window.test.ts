import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, docker, fileDoc } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';

const fx = fleetFixture(t);

// A one-hour window twelve hours from now (UTC): closed on the real clock while the test runs,
// which the CLI runs use; the in-process runs move their clock into it instead of waiting.
const opening = new Date(Date.now() + 12 * 3600_000);
opening.setUTCSeconds(0, 0);
const schedule = `${opening.getUTCMinutes()} ${opening.getUTCHours()} * * *`;
const inside = () => new Date(opening.getTime() + 10 * 60_000);
const stamp = (d: Date) => `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;

const running = async (name: string) => (await docker.getContainer(name).inspect()).State.Running;

t.test(
  'a closed change window holds a new revision and still corrects drift; inside it the revision is applied',
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'steward-window-'));
    t.teardown(() => rm(root, { recursive: true, force: true }));
    const a = await fx.agent({
      extra: `files:\n  roots: [${root}]\n`,
      sourceExtra: `  window: { schedule: "${schedule}", duration: 1h, timezone: UTC }`,
    });
    const conf = join(root, 'app.conf');
    const web = `web-${a.host}`;
    const v1 = await fx.fleet.commit({
      [`hosts/${a.host}/web.yaml`]: containerDoc(web, { image: 'local/busybox:1' }),
      [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=1\n', 'conf'),
    });
    let r = await a.once();
    t.equal(r.outcome.phase, 'Converged', 'a host that applied nothing yet applies its first revision at once');
    t.equal(r.outcome.appliedRevision, v1);

    const v2 = await fx.fleet.commit({ [`hosts/${a.host}/conf.yaml`]: fileDoc(conf, 'v=2\n', 'conf') });
    await writeFile(conf, 'edited by hand\n');
    await docker.getContainer(web).stop({ t: 0 });
    r = await a.once();
    t.equal(r.outcome.phase, 'Progressing', 'the new revision waits');
    t.equal(r.outcome.appliedRevision, v1);
    t.equal(r.outcome.desiredRevision, v2, 'the head is still what the host wants');
    t.equal(await readFile(conf, 'utf8'), 'v=1\n', 'drift is corrected toward the applied revision');
    t.equal(await running(web), true, 'the stopped container is started again');
    const doc = await fx.statusOf(a.host);
    t.match(
      doc.conditions.find((c) => c.type === 'Ready'),
      {
        status: 'False',
        reason: 'WindowClosed',
        message: `revision ${v2.slice(0, 7)} waits for the change window (source.window), which opens at ${stamp(opening)}; 2 resource(s) match ${v1.slice(0, 7)}`,
      },
    );
    t.equal(doc.appliedRevision, v1);

    // The CLI on the real clock: once exits 0 (nothing failed; the revision waits), plan says so.
    const once = await steward(['once', '--config', a.configFile]);
    t.equal(once.code, 0, once.stderr);
    t.equal(await readFile(conf, 'utf8'), 'v=1\n');
    const plan = await steward(['plan', '--config', a.configFile]);
    t.equal(plan.code, 0, plan.stderr);
    t.match(
      plan.stdout,
      `held (WindowClosed): revision ${v2.slice(0, 7)} waits for the change window (source.window), which opens at ${stamp(opening)}`,
    );
    t.match(plan.stdout, 'File/conf', 'plan shows what the revision would change');

    r = await a.once({ now: inside });
    t.equal(r.outcome.phase, 'Converged', 'inside the window the revision is applied');
    t.equal(r.outcome.appliedRevision, v2);
    t.equal(await readFile(conf, 'utf8'), 'v=2\n');
    t.equal(r.outcome.waiting, undefined);
  },
);

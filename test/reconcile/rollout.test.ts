import t from 'tap';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerDoc, fileDoc, type TestAgent } from '../helpers/agent.js';
import { steward } from '../helpers/cli.js';
import { fleetFixture } from '../helpers/fixture.js';

const fx = fleetFixture(t);

const ROLLOUT = `waves:
  - { name: canary, selector: { ring: canary }, minConverged: "100%", soak: 10m }
  - { name: early, selector: { ring: early }, minConverged: 2, soak: 5m }
`;
const probe = { exec: { command: ['grep', '-q', '1', '/VERSION'] }, interval: '200ms', timeout: '1s', deadline: '2s' };

t.test(
  'a staged rollout through 12 real agents: waves in order after their soak; a revision failed on a canary halts; a fix goes through',
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'steward-rollout-'));
    t.teardown(() => rm(root, { recursive: true, force: true }));
    // A real receiver for the last host's rolloutHalted notifications.
    const posted: string[] = [];
    const rx = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => (posted.push(body), res.end()));
    });
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
    t.teardown(() => rx.close());
    const notify = `notify: [{ url: "http://127.0.0.1:${(rx.address() as { port: number }).port}/", events: [rolloutHalted] }]`;
    const rings = [...Array(2).fill('canary'), ...Array(4).fill('early'), ...Array(6).fill('rest')] as string[];
    const agents: Array<{ a: TestAgent; ring: string }> = [];
    for (const [i, ring] of rings.entries())
      agents.push({
        ring,
        a: await fx.agent({
          labels: `{ ring: ${ring} }`,
          extra: `files: { roots: [${root}] }\nrollback: auto\n${i === rings.length - 1 ? notify : ''}`,
        }),
      });
    const last = agents[agents.length - 1]!.a;
    const ring = (name: string) => agents.filter((x) => x.ring === name).map((x) => x.a);
    const canary1 = ring('canary')[0]!;
    const web = `web-${canary1.host}`;
    const conf = (a: TestAgent) => join(root, `${a.host}.conf`);
    // One commit changes every host's file; only the first canary runs a container, healthy
    // while its command writes 1 to /VERSION.
    const release = (v: string, healthy = true, more: Record<string, string> = {}) =>
      fx.fleet.commit({
        ...Object.fromEntries(agents.map(({ a }) => [`hosts/${a.host}/conf.yaml`, fileDoc(conf(a), `${v}\n`, 'conf')])),
        [`hosts/${canary1.host}/web.yaml`]: containerDoc(web, {
          image: 'local/busybox:1',
          command: [
            'sh',
            '-c',
            `echo ${healthy ? 1 : 2} > /VERSION; echo ${v} > /release; trap 'exit 0' TERM; sleep 100000 & wait`,
          ],
          probe,
        }),
        ...more,
      });
    let clock = Date.now();
    // A round: the waves one after the other, the hosts of a wave at the same time.
    const round = async () => {
      for (const name of ['canary', 'early', 'rest'])
        await Promise.all(ring(name).map((a) => a.once({ now: () => new Date(clock) })));
    };
    const minutes = (m: number) => (clock += m * 60_000);
    const contents = async (as: TestAgent[]) =>
      Promise.all(as.map(async (a) => (await readFile(conf(a), 'utf8')).trim()));

    await release('v=1', true, { 'rollout.yaml': ROLLOUT });
    await round();
    t.same(await contents(agents.map((x) => x.a)), Array(12).fill('v=1'), 'the first revision: every host at once');

    const wall = Date.now();
    const v2 = await release('v=2');
    await round();
    t.same(await contents(ring('canary')), ['v=2', 'v=2'], 'the canaries apply it');
    t.same(await contents(ring('early')), Array(4).fill('v=1'), 'the early wave waits for the canary soak');
    t.same(await contents(ring('rest')), Array(6).fill('v=1'));
    const early = await fx.statusOf(ring('early')[0]!.host);
    t.equal(early.phase, 'Progressing');
    t.equal(early.desiredRevision, v2);
    t.match(
      early.conditions.find((c) => c.type === 'Ready'),
      {
        reason: 'RolloutWaiting',
        message: new RegExp(
          `^revision ${v2.slice(0, 7)} waits for wave "canary": 0 of 2 host\\(s\\) converged at it for 10m, 2 needed \\(wave "early"\\); 1 resource\\(s\\) match `,
        ),
      },
    );
    const plan = await steward(['plan', '--config', ring('rest')[0]!.configFile]);
    t.match(plan.stdout, `held (RolloutWaiting): revision ${v2.slice(0, 7)} waits for wave "canary"`);

    // steward status --waves, on the real clock: the canaries hold it, but not yet for 10 minutes.
    const st = await steward(['status', '--config', ring('rest')[0]!.configFile, '--waves']);
    t.equal(st.code, 1, st.stderr);
    t.equal(
      st.stdout,
      [
        `rollout of ${v2.slice(0, 7)} (branch main):`,
        '  canary     0 of 2 host(s) at it for 10m, 2 needed: under way',
        '  early      0 of 4 host(s) at it for 5m, 2 needed: under way',
        '  (no wave)  0 of 6 host(s) at it, 6 needed: under way',
        '',
      ].join('\n'),
    );
    minutes(10);
    await round();
    t.same(await contents(ring('early')), Array(4).fill('v=2'), 'after the soak the early wave applies it');
    t.same(await contents(ring('rest')), Array(6).fill('v=1'), 'the rest waits for the early soak');
    t.match(
      (await fx.statusOf(ring('rest')[0]!.host)).conditions.find((c) => c.type === 'Ready')?.message,
      'waits for wave "early"',
    );
    minutes(5);
    await round();
    t.same(await contents(ring('rest')), Array(6).fill('v=2'), 'and then the hosts no wave selects');
    t.comment(
      `v=2 through three waves: 15 simulated minutes of soak, ${Date.now() - wall} ms of wall time for 4 rounds of 12 runs`,
    );

    // A revision unhealthy on one canary: rolled back there, and no later wave applies it.
    const v3 = await release('v=3', false);
    await round();
    t.equal(canary1.ctx.config.host, canary1.host);
    const c1 = await fx.statusOf(canary1.host);
    t.equal(c1.phase, 'Degraded', 'the canary rolled it back');
    t.same(c1.failedRevisions, [v3]);
    t.same(await contents(ring('canary')), ['v=2', 'v=3'], 'the other canary (same wave) applied it');
    minutes(30);
    await round();
    t.same(await contents(ring('early')), Array(4).fill('v=2'), 'the early wave never applies it');
    t.same(await contents(ring('rest')), Array(6).fill('v=2'), 'nor the rest');
    await last.ctx.notifier!.drain(10_000);
    t.equal(posted.length, 1, 'one rolloutHalted notification, not one per poll');
    t.match(JSON.parse(posted[0]!), { event: 'rolloutHalted', host: last.host, revision: v3, reason: 'RolloutHalted' });
    const halted = await fx.statusOf(ring('rest')[5]!.host);
    t.match(
      halted.conditions.find((c) => c.type === 'Ready'),
      {
        reason: 'RolloutHalted',
        message: `revision ${v3.slice(0, 7)} failed on ${canary1.host} of an earlier wave; the rollout is halted for the hosts no wave selects until the branch moves; 1 resource(s) match ${v2.slice(0, 7)}`,
      },
    );

    // A fixed revision after it goes through, wave by wave.
    await release('v=4');
    await round();
    t.same(await contents(ring('canary')), ['v=4', 'v=4']);
    t.same(await contents(ring('early')), Array(4).fill('v=2'));
    minutes(10);
    await round();
    t.same(await contents(ring('early')), Array(4).fill('v=4'));
    minutes(5);
    await round();
    t.same(await contents(agents.map((x) => x.a)), Array(12).fill('v=4'), 'every host at the fix');
    t.equal((await fx.statusOf(canary1.host)).phase, 'Converged');
    await last.ctx.notifier!.drain(10_000);
    t.equal(posted.length, 1, 'and none once the rollout goes on');
  },
);

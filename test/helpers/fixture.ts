import type { Test } from 'tap';
import { matchesSchema } from '../../agent/manifest/schema.js';
import type { HostStatus } from '../../agent/types/host-status.js';
import { makeAgent, type TestAgent } from './agent.js';
import { createFleetRepo, showFile, startGitServer, type FleetRepo, type GitServer, statusRef } from './git.js';

export interface FleetFixture {
  /** Set before the first test of the file runs. */
  server: GitServer;
  /** The repository "fleet" on `server`. */
  fleet: FleetRepo;
  /** Agents cleaned up (containers, state) when the file's tests end. */
  agents: TestAgent[];
  /** An agent on the fleet repository, cleaned up at the end. */
  agent(opts?: Partial<Parameters<typeof makeAgent>[0]>): Promise<TestAgent>;
  /** A host's document on the status branch, checked against the schema. */
  statusOf(host: string): Promise<HostStatus>;
}

/**
 * The setup the end-to-end test files share: a real Git server (with `token`, one that asks for
 * it), one fleet repo (with `seed` committed first), agents.
 */
export function fleetFixture(t: Test, opts: { token?: string; seed?: Record<string, string> } = {}): FleetFixture {
  const fx: FleetFixture = {
    server: undefined as unknown as GitServer,
    fleet: undefined as unknown as FleetRepo,
    agents: [],
    async agent(opts = {}) {
      const a = await makeAgent({ url: fx.server.url('fleet'), ...opts });
      fx.agents.push(a);
      return a;
    },
    async statusOf(host) {
      const text = await showFile(fx.fleet.bare, statusRef(host), `hosts/${host}/status.json`);
      if (!text) throw new Error(`no status for ${host}`);
      const doc: unknown = JSON.parse(text);
      if (!matchesSchema<HostStatus>('host-status', doc))
        throw new Error(`status of ${host} does not match the schema`);
      return doc;
    },
  };
  t.before(async () => {
    fx.server = await startGitServer(opts.token ? { token: opts.token } : {});
    fx.fleet = await createFleetRepo(fx.server, 'fleet');
    if (opts.seed) await fx.fleet.commit(opts.seed);
  });
  t.teardown(async () => {
    for (const a of fx.agents) await a.cleanup();
    await fx.server.stop();
  });
  return fx;
}

import { loadConfig } from '../config/load.js';
import { formatError, StewardErrors } from '../errors.js';
import { runLoop } from '../daemon/loop.js';
import { createContext } from '../reconcile/context.js';
import type { AgentContext } from '../reconcile/run.js';
import { args, configFrom, configOption, loggerFor, type ExitCode, type Io } from './common.js';

export const help = 'steward run [--config FILE]      the daemon: poll, reconcile, report, forever';

/**
 * The daemon. SIGTERM (the signal passed in) lets the current step finish, then exits 0.
 * SIGHUP reloads the config; an invalid new config is refused and the old one kept.
 */
export async function run(argv: string[], _io: Io, signal: AbortSignal): Promise<ExitCode> {
  const { values } = args(argv, { ...configOption, 'max-runs': { type: 'string' } });
  const config = await configFrom(values);
  let ctx: AgentContext = await createContext(config, loggerFor(config, false), { signal });
  const log = () => ctx.log.child({ component: 'daemon' });
  const reload = () => {
    void (async () => {
      try {
        const next = await loadConfig(ctx.config.file);
        ctx = await createContext(next, loggerFor(next, false), { signal });
        log().info({ file: next.file }, 'config reloaded');
      } catch (err) {
        const msg = err instanceof StewardErrors ? err.errors.map(formatError).join('; ') : (err as Error).message;
        log().error({ code: 'E_CONFIG_INVALID' }, `config reload refused, keeping the running config: ${msg}`);
      }
    })();
  };
  process.on('SIGHUP', reload);
  log().info({ host: config.host, url: config.source.url, branch: config.source.branch, paths: config.source.paths }, 'steward started');
  try {
    const maxRuns = values['max-runs'] ? Number(values['max-runs']) : undefined;
    await runLoop({ signal, context: () => ctx, ...(maxRuns ? { maxRuns } : {}) });
  } finally {
    process.off('SIGHUP', reload);
  }
  log().info('steward stopped');
  return 0;
}

import { mkdir, rm } from '../files.js';
import { StewardError } from '../errors.js';
import { localSuspendFile, suspendLocally } from '../reconcile/suspend.js';
import { args, configFrom, configOption, type ExitCode, type Io } from './common.js';

export const suspendHelp =
  'steward suspend --reason TEXT [--config FILE]   apply nothing and correct no drift until `steward resume`';
export const resumeHelp = 'steward resume [--config FILE]     lift a `steward suspend` (not hosts/<host>/suspend.yaml)';

/** Writes stateDir/suspend.json; the daemon reads it at its next run (no signal needed). */
export async function suspend(argv: string[], io: Io): Promise<ExitCode> {
  const { values } = args(argv, { ...configOption, reason: { type: 'string' } });
  const reason = values.reason?.trim();
  if (!reason) throw new StewardError('E_ARGS', '--reason TEXT is required: it is shown in the status of this host');
  const config = await configFrom(values);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await suspendLocally(config.stateDir, reason, new Date());
  io.out(
    `suspended ${config.host}: nothing is applied and no drift corrected from the next run on (${localSuspendFile(config.stateDir)}); \`steward resume\` lifts it`,
  );
  return 0;
}

export async function resume(argv: string[], io: Io): Promise<ExitCode> {
  const { values } = args(argv, configOption);
  const config = await configFrom(values);
  const file = localSuspendFile(config.stateDir);
  const existed = await rm(file).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw new StewardError('E_ARGS', `cannot remove ${file}: ${err.code ?? err.message}`);
    },
  );
  io.out(
    existed
      ? `resumed ${config.host}: the next run applies and corrects drift again (unless hosts/${config.host}/suspend.yaml in Git suspends it)`
      : `${config.host} was not suspended locally (a hosts/${config.host}/suspend.yaml in Git is lifted by removing it there)`,
  );
  return 0;
}

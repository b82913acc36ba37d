#!/usr/bin/env node
import { doctor, help as doctorHelp } from './cli/doctor.js';
import { enroll, help as enrollHelp } from './cli/enroll.js';
import { once, help as onceHelp } from './cli/once.js';
import { plan, help as planHelp } from './cli/plan.js';
import { run, help as runHelp } from './cli/run.js';
import { status, help as statusHelp } from './cli/status.js';
import { resume, resumeHelp, suspend, suspendHelp } from './cli/suspend.js';
import { validate, help as validateHelp } from './cli/validate.js';
import { version, help as versionHelp } from './cli/version.js';
import { stdio, type ExitCode, type Io } from './cli/common.js';
import { formatError, StewardError, StewardErrors } from './errors.js';

type Command = (argv: string[], io: Io, signal: AbortSignal) => Promise<ExitCode>;
/** Errors in a file the config names (keys, auth): a configuration problem, exit 2 like E_CONFIG_*. */
const CONFIG_LIKE = new Set(['E_ARGS', 'E_SECRET_KEY', 'E_REGISTRY_AUTH']);

const commands: Record<string, [Command, string]> = {
  run: [run, runHelp],
  once: [once, onceHelp],
  plan: [plan, planHelp],
  validate: [validate, validateHelp],
  status: [status, statusHelp],
  suspend: [suspend, suspendHelp],
  resume: [resume, resumeHelp],
  enroll: [enroll, enrollHelp],
  doctor: [doctor, doctorHelp],
  version: [version, versionHelp],
};

function usage(): string {
  return ['usage:', ...Object.values(commands).map(([, h]) => `  ${h}`)].join('\n');
}

/** The one top-level catch: every error becomes a message and an exit code. */
async function main(argv: string[]): Promise<ExitCode> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') return version([], stdio);
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    stdio.out(usage());
    return name ? 0 : 2;
  }
  const entry = commands[name];
  if (!entry) {
    stdio.err(`steward: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  const stop = new AbortController();
  const onTerm = () => stop.abort(new Error('SIGTERM'));
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onTerm);
  try {
    return await entry[0](rest, stdio, stop.signal);
  } catch (err) {
    if (err instanceof StewardErrors) {
      for (const e of err.errors) stdio.err(`steward ${name}: ${formatError(e)}`);
      return 2;
    }
    if (err instanceof StewardError) {
      stdio.err(`steward ${name}: ${formatError(err)}`);
      return err.code.startsWith('E_CONFIG') || CONFIG_LIKE.has(err.code) ? 2 : 1; // E_LOCKED: 1
    }
    stdio.err(`steward ${name}: unexpected error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onTerm);
  }
}

process.exitCode = await main(process.argv.slice(2));

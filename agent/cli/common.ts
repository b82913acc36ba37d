import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_CONFIG_PATH, loadConfig, type AgentConfig } from '../config/load.js';
import { StewardError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { pino } from 'pino';

/** What a command returns: the exit code (0 ok, 1 a resource failed, 2 bad input). */
export type ExitCode = 0 | 1 | 2;

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

/** Parses a command's arguments; an unknown option is bad input (exit 2), never ignored. */
export function args<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, positionals = 0) {
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals: positionals > 0, strict: true });
    if (parsed.positionals.length > positionals)
      throw new Error(`unexpected argument "${parsed.positionals[positionals]}"`);
    return parsed;
  } catch (err) {
    throw new StewardError('E_ARGS', (err as Error).message);
  }
}

export const configOption = { config: { type: 'string', short: 'c' } } as const;

export async function configFrom(values: { config?: string | undefined }): Promise<AgentConfig> {
  return loadConfig(values.config ?? process.env.STEWARD_CONFIG ?? DEFAULT_CONFIG_PATH);
}

/** The daemon logs to stdout (journald); commands that print results log to stderr. */
export function loggerFor(config: AgentConfig | undefined, toStderr: boolean): Logger {
  const level = process.env.STEWARD_LOG_LEVEL ?? config?.log.level ?? 'info';
  return createLogger(level, toStderr ? pino.destination({ fd: 2, sync: true }) : undefined);
}

import { existsSync } from 'node:fs';
import { stringify } from 'yaml';
import { DEFAULT_CONFIG_PATH, parseConfig, readCredentials } from '../config/load.js';
import { StewardError } from '../errors.js';
import { writeFileAtomic } from '../host/fs.js';
import { args, type ExitCode, type Io } from './common.js';

export const help = 'steward enroll --url URL [--host NAME] [--token-file F] [--path P]... [--branch B] [--label k=v]... [--root DIR]... [--config FILE] [--force]';

/**
 * Writes the agent config file. The file is validated exactly as the agent will load it before
 * it is written (atomically); an existing file is kept unless --force.
 */
export async function enroll(argv: string[], io: Io): Promise<ExitCode> {
  const { values } = args(argv, {
    url: { type: 'string' },
    host: { type: 'string' },
    'token-file': { type: 'string' },
    username: { type: 'string' },
    path: { type: 'string', multiple: true },
    branch: { type: 'string' },
    label: { type: 'string', multiple: true },
    root: { type: 'string', multiple: true },
    interval: { type: 'string' },
    'state-dir': { type: 'string' },
    rollback: { type: 'string' },
    config: { type: 'string', short: 'c' },
    force: { type: 'boolean' },
  });
  if (!values.url) throw new StewardError('E_ARGS', '--url is required');
  const file = values.config ?? DEFAULT_CONFIG_PATH;
  if (existsSync(file) && !values.force) throw new StewardError('E_ARGS', `${file} exists; pass --force to replace it`);
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const m = /^([^=]+)=(.*)$/.exec(l);
    if (!m) throw new StewardError('E_ARGS', `--label ${l}: expected key=value`);
    labels[m[1]!] = m[2]!;
  }
  const doc = {
    ...(values.host ? { host: values.host } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    source: {
      url: values.url,
      ...(values.branch ? { branch: values.branch } : {}),
      ...(values.path ? { paths: values.path } : {}),
      ...(values['token-file'] ? { auth: { ...(values.username ? { username: values.username } : {}), tokenFile: values['token-file'] } } : {}),
      ...(values.interval ? { interval: values.interval } : {}),
    },
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    ...(values.root ? { files: { roots: values.root } } : {}),
    ...(values.rollback ? { rollback: values.rollback } : {}),
  };
  const text = `# Steward agent config, written by steward enroll.\n${stringify(doc)}`;
  const config = parseConfig(text, file);
  await readCredentials(config); // a token file that cannot be read fails now, not at first poll
  await writeFileAtomic(file, text, { mode: 0o640 });
  io.out(`wrote ${file} for host ${config.host} (${config.source.url}, ${config.source.paths.join(', ')})`);
  return 0;
}

import { mkdir } from '../files.js';
import { SecretKeys } from '../config/keys.js';
import { RegistryAuth } from '../config/registry.js';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { stringify } from 'yaml';
import { DEFAULT_CONFIG_PATH, parseConfig } from '../config/load.js';
import { readGitCredentials } from '../source/remote.js';
import { StewardError } from '../errors.js';
import { writeFileAtomic } from '../host/fs.js';
import { args, type ExitCode, type Io } from './common.js';

export const help =
  'steward enroll --url URL [--host NAME] [--token-file F | --ssh-key-file F --known-hosts-file F] [--allowed-signers-file F] [--gpg-keys-file F] [--age-key-file F] [--pgp-key-file F] [--docker-auth-file F] [--path P]... [--branch B] [--label k=v]... [--root DIR]... [--config FILE] [--force]';

const ENROLL_OPTIONS = {
  url: { type: 'string' },
  host: { type: 'string' },
  'token-file': { type: 'string' },
  'ssh-key-file': { type: 'string' },
  'known-hosts-file': { type: 'string' },
  'allowed-signers-file': { type: 'string' },
  'gpg-keys-file': { type: 'string' },
  'age-key-file': { type: 'string' },
  'pgp-key-file': { type: 'string' },
  'docker-auth-file': { type: 'string' },
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
  'no-systemd': { type: 'boolean' },
} as const;

/**
 * Writes the agent config file. The file is validated exactly as the agent will load it before
 * it is written (atomically); an existing file is kept unless --force.
 */
export async function enroll(argv: string[], io: Io): Promise<ExitCode> {
  const { values } = args(argv, ENROLL_OPTIONS);
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
      ...authOf(values),
      ...(values.interval ? { interval: values.interval } : {}),
      ...verifyOf(values['allowed-signers-file'], values['gpg-keys-file']),
    },
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    ...(values.root ? { files: { roots: values.root } } : {}),
    ...(values.rollback ? { rollback: values.rollback } : {}),
    ...(values['docker-auth-file'] ? { docker: { authFile: values['docker-auth-file'] } } : {}),
    ...secretsOf(values['age-key-file'], values['pgp-key-file']),
  };
  const text = `# Steward agent config, written by steward enroll.\n${stringify(doc)}`;
  const config = parseConfig(text, file);
  // A key, token or auth file that cannot be read (or is not one) fails now, not at first poll.
  await readGitCredentials(config);
  if (config.secrets) await SecretKeys.load(config);
  await RegistryAuth.load(config);
  await writeFileAtomic(file, text, { mode: 0o640 });
  io.out(`wrote ${file} for host ${config.host} (${config.source.url}, ${config.source.paths.join(', ')})`);
  if (!values['no-systemd'] && file === DEFAULT_CONFIG_PATH && existsSync('/run/systemd/system')) {
    const dropIn = await writeDropIn(
      [
        config.source.tokenFile,
        config.source.ssh?.keyFile,
        config.secrets?.ageKeyFile,
        config.secrets?.pgpKeyFile,
        config.docker.authFile,
      ],
      config.files.roots,
    );
    io.out(`wrote ${dropIn}; start the agent with: systemctl enable --now steward`);
  }
  return 0;
}

/**
 * The hardened unit sees the file system read-only except what it is told: the configured file
 * roots become ReadWritePaths (created now, so the mount exists), and the token file
 * the SSH deploy key, the SOPS keys and the registry auth file are passed with LoadCredential= under their own names, which the agent
 * finds in $CREDENTIALS_DIRECTORY (known_hosts is public: read where it is).
 */
async function writeDropIn(credentials: Array<string | undefined>, roots: string[]): Promise<string> {
  for (const root of roots) await mkdir(root, { recursive: true, mode: 0o755 });
  const lines = ['# Written by steward enroll: the file roots and the Git credentials of this host.', '[Service]'];
  if (roots.length > 0) lines.push(`ReadWritePaths=${roots.map((r) => `-${r}`).join(' ')}`);
  for (const file of credentials) if (file) lines.push(`LoadCredential=${basename(file)}:${file}`);
  const path = '/etc/systemd/system/steward.service.d/enroll.conf';
  await writeFileAtomic(path, lines.join('\n') + '\n', { mode: 0o644 });
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve) => execFile('systemctl', ['daemon-reload'], () => resolve()));
  return path;
}

/** secrets from --age-key-file and --pgp-key-file (absent when neither is given). */
function secretsOf(ageKeyFile?: string, pgpKeyFile?: string) {
  if (!ageKeyFile && !pgpKeyFile) return {};
  return { secrets: { ...(ageKeyFile ? { ageKeyFile } : {}), ...(pgpKeyFile ? { pgpKeyFile } : {}) } };
}

/** source.verify from --allowed-signers-file and --gpg-keys-file (absent when neither is given). */
function verifyOf(allowedSignersFile?: string, gpgKeysFile?: string) {
  if (!allowedSignersFile && !gpgKeysFile) return {};
  return {
    verify: { ...(allowedSignersFile ? { allowedSignersFile } : {}), ...(gpgKeysFile ? { gpgKeysFile } : {}) },
  };
}

/** source.auth from --token-file (HTTP) or --ssh-key-file and --known-hosts-file (SSH). */
function authOf(values: {
  username?: string;
  'token-file'?: string;
  'ssh-key-file'?: string;
  'known-hosts-file'?: string;
}) {
  const auth = {
    ...(values.username ? { username: values.username } : {}),
    ...(values['token-file'] ? { tokenFile: values['token-file'] } : {}),
    ...(values['ssh-key-file'] ? { sshKeyFile: values['ssh-key-file'] } : {}),
    ...(values['known-hosts-file'] ? { knownHostsFile: values['known-hosts-file'] } : {}),
  };
  return Object.keys(auth).length > 0 ? { auth } : {};
}

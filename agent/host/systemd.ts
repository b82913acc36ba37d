import { StewardError } from '../errors.js';

/** What `systemctl show` says of one unit. */
export interface UnitState {
  id: string;
  loadState: string;
  activeState: string;
  subState: string;
  unitFileState: string;
  /** Microseconds since boot when the main process last started; changes on every (re)start. */
  startedAt: string;
  result: string;
}

const PROPS = [
  'Id',
  'LoadState',
  'ActiveState',
  'SubState',
  'UnitFileState',
  'ExecMainStartTimestampMonotonic',
  'Result',
];

/** The only door to systemd: `systemctl` run without a shell, each call with a deadline. */
export class Systemd {
  constructor(
    readonly unitDir = process.env.STEWARD_UNIT_DIR ?? '/etc/systemd/system',
    private readonly bin = 'systemctl',
    private readonly timeoutMs = 90_000,
  ) {}

  /** One call for many units; the answer comes in the order asked. */
  async show(units: readonly string[]): Promise<Map<string, UnitState>> {
    const out = new Map<string, UnitState>();
    if (units.length === 0) return out;
    const text = await this.#run(['show', '--no-pager', `--property=${PROPS.join(',')}`, '--', ...units]);
    const blocks = text.split(/\n\n+/).filter((b) => b.trim() !== '');
    units.forEach((unit, i) => {
      const kv = new Map(
        (blocks[i] ?? '').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
      );
      out.set(unit, {
        id: kv.get('Id') ?? unit,
        loadState: kv.get('LoadState') ?? 'not-found',
        activeState: kv.get('ActiveState') ?? 'inactive',
        subState: kv.get('SubState') ?? '',
        unitFileState: kv.get('UnitFileState') ?? '',
        startedAt: kv.get('ExecMainStartTimestampMonotonic') ?? '0',
        result: kv.get('Result') ?? '',
      });
    });
    return out;
  }

  async daemonReload(): Promise<void> {
    await this.#run(['daemon-reload']);
  }

  async unit(verb: 'start' | 'stop' | 'restart' | 'enable' | 'disable', unit: string): Promise<void> {
    await this.#run([verb, '--no-pager', '--', unit]);
  }

  async #run(args: string[]): Promise<string> {
    const { execFile } = await import('node:child_process'); // loaded by the first systemctl call
    return new Promise((resolve, reject) => {
      execFile(this.bin, args, { timeout: this.timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        const code = e.code === 'ENOENT' ? 'E_SYSTEMD_UNREACHABLE' : 'E_INTERNAL';
        const why =
          e.code === 'ENOENT'
            ? 'systemctl is not installed'
            : e.killed
              ? `no answer within ${this.timeoutMs / 1000}s`
              : (stderr.trim().split('\n')[0] ?? '') || e.message;
        reject(
          new StewardError(code, `systemctl ${args.filter((a) => !a.startsWith('--')).join(' ')}: ${why}`, {
            retry: 'transient',
            cause: err,
          }),
        );
      });
    });
  }
}

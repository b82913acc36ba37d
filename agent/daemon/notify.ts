import type { Logger } from '../log.js';

/**
 * systemd's notify protocol. Node cannot send on the AF_UNIX datagram socket itself, so each
 * message is one run of `systemd-notify` (the unit has NotifyAccess=all). Outside systemd
 * (no NOTIFY_SOCKET) every call does nothing, and node:child_process is not loaded (0.7 MiB of
 * RSS on Node 26: a child process is started only under systemd, or for a Service or an exec probe).
 */
export class Notifier {
  readonly #enabled = Boolean(process.env.NOTIFY_SOCKET);
  readonly #watchdogMs = Number(process.env.WATCHDOG_USEC ?? 0) / 1000;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger) {}

  ready(status: string): Promise<void> {
    return this.#send(['--ready', `--status=${status}`]);
  }

  status(text: string): Promise<void> {
    return this.#send([`--status=${text}`]);
  }

  stopping(): Promise<void> {
    return this.#send(['STOPPING=1']);
  }

  /**
   * Pings the watchdog every third of WatchdogSec from a timer, so a blocked event loop is
   * restarted by systemd. `alive()` may veto a ping (a run stuck far past its deadlines).
   */
  startWatchdog(alive: () => boolean): void {
    if (!this.#enabled || !(this.#watchdogMs > 0)) return;
    const every = Math.max(500, Math.floor(this.#watchdogMs / 3));
    this.#timer = setInterval(() => {
      if (alive()) void this.#send(['WATCHDOG=1']);
      else
        this.log.error(
          { code: 'E_INTERNAL' },
          'a run is stuck: watchdog pings stopped, systemd will restart the agent',
        );
    }, every);
    this.#timer.unref();
    void this.#send(['WATCHDOG=1']);
  }

  stopWatchdog(): void {
    clearInterval(this.#timer);
  }

  async #send(args: string[]): Promise<void> {
    if (!this.#enabled) return;
    const { execFile } = await import('node:child_process');
    return new Promise((resolve) => {
      execFile('systemd-notify', args, { timeout: 5000 }, (err) => {
        if (err) this.log.warn({ err: err.message }, `systemd-notify ${args.join(' ')} failed`);
        resolve();
      });
    });
  }
}

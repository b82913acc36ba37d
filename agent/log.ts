import { writeSync } from 'node:fs';
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** journald reads a "<N>" line prefix as the priority; pino's levels map onto syslog's. */
const PRIORITY: Record<string, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3, fatal: 2 };

/** Writes each JSON line to stdout with its journald priority prefix (used under systemd). */
export function journaldStream(fd = 1): DestinationStream {
  return {
    write(line: string) {
      const m = /"level":"(\w+)"/.exec(line);
      writeSync(fd, `<${PRIORITY[m?.[1] ?? 'info'] ?? 6}>${line}`);
    },
  };
}

/**
 * The root logger: JSON lines on stdout. Under systemd (JOURNAL_STREAM set) each line carries
 * its journald priority. Components bind themselves with `log.child({ component })`, actions add
 * `resource` and `reason`. Secrets are never handed to the logger; the redaction list is a
 * second line of defence.
 */
export function createLogger(level: string = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'token',
          '*.token',
          'password',
          '*.password',
          'headers.authorization',
          'headers.Authorization',
          'env',
          '*.env',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? (process.env.JOURNAL_STREAM ? journaldStream() : pino.destination({ fd: 1, sync: true })),
  );
}

import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * The root logger: JSON lines on stdout (journald takes them as they are). Components bind
 * themselves with `log.child({ component })`, actions add `resource` and `reason`.
 * Secrets are never handed to the logger; the redaction list is a second line of defence.
 */
export function createLogger(level: string = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['token', '*.token', 'password', '*.password', 'headers.authorization', 'headers.Authorization', 'env', '*.env'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** JSON logs to stderr; secrets never reach a log call (they are redacted by path too). */
export function createLogger(name: string, level = process.env.KIVER_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: ['*.password', '*.token', '*.authorization', 'req.headers.authorization', '*.env'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

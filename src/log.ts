import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';
import { escapeControls } from './escape.js';

export type Logger = PinoLogger;
/** auto: pretty when the log goes to a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * Logs to stderr: JSON lines (for shippers and scripts), or with `pretty` one coloured line
 * per record for people. Secrets never reach a log call (they are redacted by path too).
 */
export function createLogger(name: string, level = process.env.KIVER_LOG_LEVEL ?? 'info', format: LogFormat = 'json'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  return pino(
    {
      name,
      level,
      redact: { paths: ['*.password', '*.token', '*.authorization', 'req.headers.authorization', '*.env'], censor: '[redacted]' },
    },
    pretty ? prettyStream(process.stderr) : pino.destination(2),
  );
}

/**
 * pino-pretty, in this process (a worker thread would lose lines at exit). It prints the
 * message and error stacks as they are, so those get their control characters escaped
 * (a stack keeps its lines, which pino-pretty indents); every other field it prints as
 * JSON, which escapes all but C1 controls and bidi overrides, so those are escaped there.
 */
export function prettyStream(out: NodeJS.WritableStream & { isTTY?: boolean }, colorize = out.isTTY === true && !process.env.NO_COLOR): DestinationStream {
  // Loaded only when wanted: every CLI command imports this module.
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as { prettyFactory: (o: PrettyOptions) => (record: object) => string };
  const pretty = prettyFactory({ colorize, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname' });
  return { write: (line: string) => void out.write(pretty(escapeRecord(JSON.parse(line) as Record<string, unknown>))) };
}

function escapeRecord(record: Record<string, unknown>, top = true): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) out[k] = escapeValue(v, top && k === 'msg' ? 'msg' : k);
  return out;
}

function escapeValue(v: unknown, key: string): unknown {
  if (typeof v === 'string') {
    if (key === 'msg') return escapeControls(v);
    return escapeControls(v, key === 'stack' ? { keepNewlines: true } : { beyondJson: true });
  }
  if (Array.isArray(v)) return v.map((x) => escapeValue(x, ''));
  if (v && typeof v === 'object') return escapeRecord(v as Record<string, unknown>, false);
  return v;
}

/** `--log-level` and `--log-format` of the commands that run a process: up, server, agent, guard. */
import type { Command } from 'commander';
import { parseLogFormat, parseLogLevel } from '../cli/flags.js';
import { createLogger, LOG_LEVELS, type Logger } from '../log.js';

export const logOptions = (c: Command) =>
  c.option('--log-level <level>', `${LOG_LEVELS.join(', ')} (default: $KIVER_LOG_LEVEL or info)`)
    .option('--log-format <format>', 'auto: coloured lines for people when stderr is a terminal, JSON lines otherwise; or pretty, json', 'auto');

/** The process's logger, from the flags logOptions added. */
export function loggerFrom(o: { logLevel?: string; logFormat: string }, name: string): Logger {
  return createLogger(name, parseLogLevel(o.logLevel ?? process.env.KIVER_LOG_LEVEL ?? 'info'), parseLogFormat(o.logFormat));
}

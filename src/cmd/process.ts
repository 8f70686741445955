/** What `kiver up`, `kiver server` and `kiver agent` share: node names, roots, signals, agent flags. */
import type { Command } from 'commander';
import os from 'node:os';
import { mkdir } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { NODE_NAME } from '../model/names.js';
import { collect, parseDuration, parseInteger } from '../cli/flags.js';
import { parseRestartCommand } from '../agent/watchdog.js';

export function defaultNodeName(): string {
  const n = os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '').slice(0, 63);
  return n || 'node-1';
}

export function checkNodeName(n: string): string {
  if (!new RegExp(NODE_NAME).test(n)) throw new InputError(`--node: "${n}" is not a valid node name (lowercase letters, digits, '.', '-')`, 'node');
  return n;
}

export async function ensureRoot(dir: string, flag: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create ${dir} (${(err as NodeJS.ErrnoException).code}); run as root or pass ${flag} DIR`, flag.slice(2));
  }
}

/** Stops on SIGINT/SIGTERM; service containers keep running. */
export function onSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`\n${sig}: stopping Kiver (service containers keep running)\n`);
    void stop().finally(() => process.exit(0));
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

export const agentOptions = (c: Command) =>
  c.option('--node <name>', 'node name', defaultNodeName())
    .option('--address <addr>', 'address clients use to reach published ports')
    .option('--label <key=value>', 'node label that service --constraint flags match (repeatable)', collect, [])
    .option('--data-root <dir>', 'host directory for replica data', '/app/data')
    .option('--log-root <dir>', 'host directory for replica logs', '/app/log')
    .option('--guard-out <dir>', 'flat directory the log guard links every log file into (default <log-root>/.shipper)')
    .option('--no-guard', 'do not run the log guard in the agent')
    .option('--docker-restart-cmd <argv>', 'what the Docker watchdog runs after repeated failed pings: a JSON array or space-separated words (no shell); "none" = never restart', 'systemctl restart docker')
    .option('--docker-watchdog-failures <n>', 'failed pings in a row before the watchdog restarts dockerd', '3')
    .option('--docker-watchdog-interval <duration>', 'time between the watchdog\'s pings', '5s')
    .option('--no-docker-watchdog', 'do not probe or restart the Docker daemon')
    .option('--allow-no-live-restore', 'run even when dockerd has live-restore off (every dockerd restart then stops all containers)');

/** The watchdog options of `kiver up` / `kiver agent`. */
export function watchdogOptions(o: { dockerWatchdog: boolean; dockerRestartCmd: string; dockerWatchdogFailures: string; dockerWatchdogInterval: string }) {
  if (o.dockerWatchdog === false) return false as const;
  const failures = parseInteger(o.dockerWatchdogFailures, 'docker-watchdog-failures', 1);
  let restartCommand: string[] | false;
  try {
    restartCommand = parseRestartCommand(o.dockerRestartCmd);
  } catch (err) {
    throw new InputError((err as Error).message, 'docker-restart-cmd');
  }
  return { restartCommand, failuresBeforeRestart: failures, intervalMs: parseDuration(o.dockerWatchdogInterval, 'docker-watchdog-interval') * 1000 };
}


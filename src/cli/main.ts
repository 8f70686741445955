import { Command, CommanderError } from 'commander';
import { KiverError } from '../errors.js';
import { registerImage } from './image.js';
import { registerAdmin } from './admin.js';
import { registerUp } from '../cmd/up.js';
import { registerServer } from '../cmd/server.js';
import { registerAgent } from '../cmd/agent.js';
import { registerGuard } from '../cmd/guard.js';
import { registerPxe } from '../cmd/pxe.js';
import { registerSnapshot } from '../cmd/snapshot.js';
import { registerMonitoring } from '../cmd/monitoring.js';
import { registerService } from './service.js';
import { registerNode, registerEvents } from './node.js';
import { registerMachine } from './machine.js';
import { registerHealth, registerAlerts } from './health.js';

/**
 * Builds the `kiver` command tree: thin API clients from cli/, commands that run a
 * process (or work on the store offline) from cmd/.
 */
export function buildProgram(): Command {
  const program = new Command('kiver')
    .description('Kiver: a container cloud for cloud services on bare metal')
    .version('0.1.0')
    .showHelpAfterError()
    .option('-o, --output <format>', 'table (default) or json; kiver health also: influx, prometheus')
    .exitOverride();
  registerUp(program);
  registerServer(program);
  registerAgent(program);
  registerService(program);
  registerNode(program);
  registerEvents(program);
  registerMachine(program);
  registerPxe(program);
  registerImage(program);
  registerSnapshot(registerAdmin(program));
  registerGuard(program);
  registerHealth(program);
  registerAlerts(program);
  registerMonitoring(program);
  return program;
}

/** Entry point: user mistakes print one line and exit 1, never a stack trace. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode);
    }
    if (err instanceof KiverError) {
      process.stderr.write(`kiver: ${err.message}\n`);
      process.exit(1);
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`kiver: ${e?.message ?? String(err)}\n`);
    if (process.env.KIVER_DEBUG) process.stderr.write(`${e?.stack}\n`);
    process.exit(1);
  }
}

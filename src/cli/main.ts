import { Command, CommanderError } from 'commander';
import { KiverError } from '../errors.js';
import { EXIT, EXIT_HELP, exitCodeOf } from './exit-codes.js';
import { printErr } from './output.js';
import { registerImage } from './image.js';
import { registerCatalog } from './catalog.js';
import { registerAdmin } from './admin.js';
import { registerUp } from '../cmd/up.js';
import { registerServer } from '../cmd/server.js';
import { registerAgent } from '../cmd/agent.js';
import { registerGuard } from '../cmd/guard.js';
import { registerPxe } from '../cmd/pxe.js';
import { registerNodeInit } from '../cmd/node-init.js';
import { registerSnapshot } from '../cmd/snapshot.js';
import { registerMonitoring } from '../cmd/monitoring.js';
import { registerSim } from '../cmd/sim.js';
import { registerService } from './service.js';
import { registerPool } from './pool.js';
import { registerNode, registerEvents } from './node.js';
import { registerMachine } from './machine.js';
import { registerToken } from './token.js';
import { registerHealth, registerAlerts } from './health.js';
import { registerBackup } from './backup.js';

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
    .addHelpText('after', `\n${EXIT_HELP}`)
    .exitOverride();
  registerUp(program);
  registerServer(program);
  registerAgent(program);
  registerService(program);
  registerCatalog(program);
  registerPool(program);
  registerNodeInit(registerNode(program));
  registerEvents(program);
  registerMachine(program);
  registerPxe(program);
  registerImage(program);
  const admin = registerAdmin(program);
  registerSnapshot(admin);
  registerToken(admin);
  registerGuard(program);
  registerHealth(program);
  registerAlerts(program);
  registerMonitoring(program);
  registerBackup(program);
  registerSim(program);
  return program;
}

/** Entry point: user mistakes print one line and exit with the class's code (exit-codes.ts), never a stack trace. */
export async function main(argv: string[]): Promise<void> {
  await run(buildProgram(), argv);
}

/** Runs a command tree with the CLI's error handling (also used by test harnesses that register one group). */
export async function run(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander printed the usage problem already; help and --version exit 0
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.input);
    }
    if (err instanceof KiverError) {
      printErr(`kiver: ${err.message}`);
      process.exit(exitCodeOf(err));
    }
    const e = err as NodeJS.ErrnoException;
    printErr(`kiver: ${e?.message ?? String(err)}`);
    if (process.env.KIVER_DEBUG) printErr(`${e?.stack}`);
    process.exit(EXIT.other);
  }
}

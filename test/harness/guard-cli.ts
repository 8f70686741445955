/**
 * `kiver guard` alone: the same command registration and error handling as src/cli/main.ts,
 * without the other command groups, so the guard's CLI tests depend on nothing but the guard.
 * Usage: node dist/test/harness/guard-cli.js guard --root … --out …
 */
import { Command, CommanderError } from 'commander';
import { registerGuard } from '../../src/cmd/guard.js';
import { KiverError } from '../../src/errors.js';

const program = new Command('kiver').exitOverride();
registerGuard(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const msg = err instanceof KiverError ? err.message : ((err as Error)?.message ?? String(err));
  process.stderr.write(`kiver: ${msg}\n`);
  process.exit(1);
}

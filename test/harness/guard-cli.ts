/**
 * `kiver guard` alone: the same command registration and error handling as src/cli/main.ts,
 * without the other command groups, so the guard's CLI tests depend on nothing but the guard.
 * Usage: node dist/test/harness/guard-cli.js guard --root … --out …
 */
import { Command } from 'commander';
import { registerGuard } from '../../src/cmd/guard.js';
import { run } from '../../src/cli/main.js';

const program = new Command('kiver').exitOverride();
registerGuard(program);
await run(program, process.argv);

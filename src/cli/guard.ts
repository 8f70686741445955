import type { Command } from 'commander';

/** `kiver guard`: placeholder until the log guard lands (issue 4). */
export function registerGuard(program: Command): void {
  program.command('guard').description('link every log file under a tree into one flat directory (not yet built)');
}

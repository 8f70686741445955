import type { Command } from 'commander';

/** `kiver admin`: operate the control plane itself. */
export function registerAdmin(program: Command): Command {
  return program.command('admin').description('operate the control plane itself');
}

/**
 * `kiver up` on a fresh Debian: when Docker is not installed or not running, the
 * compute role's Docker steps (daemon.json, docker.io, dockerd under systemd or Kiver's
 * supervisor) — offered on a terminal, run with --yes, and without root the one
 * command to run instead.
 */
import { InputError, UnavailableError } from '../errors.js';
import { NodeHost } from './node-host.js';
import { applyPlan, planSteps, printPlan, type Printer } from './step.js';
import { dockerSteps } from './init.js';
import { unitFilesStep } from './units.js';
import { processesStep } from './processes.js';
import type { InitContext } from './context.js';

/** The command a non-root user runs once to get Docker and Kiver going. */
export const UP_AS_ROOT = 'sudo npx kiver up --yes';

export async function ensureDockerForUp(o: { yes: boolean; confirm?: (q: string) => Promise<boolean>; root?: string; why: string }, print: Printer): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new UnavailableError(`Docker is not running here (${o.why}). Run this once; it installs Debian's docker.io, configures and starts dockerd, then starts Kiver:\n  ${UP_AS_ROOT}`);
  }
  const host = new NodeHost(o.root ?? '/');
  const pm = host.processManager();
  const ctx: InitContext = {
    host, manager: pm.kind,
    s: { dataRoot: '/app/data', logRoot: '/app/log', dockerRoot: '/var/lib/docker', dockerPackage: 'docker.io', logMaxSize: '50m', logMaxFile: 3, servers: [], joinToken: '', node: '', shipperCpu: 0, shipperMemory: 0 },
  };
  const changed = new Set<string>();
  const planned = await planSteps([...dockerSteps(ctx, changed), unitFilesStep(ctx, changed, false), processesStep(ctx, changed, false)]);
  print(`Docker is not running (${o.why}); to run Kiver this host needs (${pm.kind === 'systemd' ? 'systemd' : `Kiver's supervisor — ${pm.why}`}):`);
  printPlan(planned, print);
  if (!o.yes) {
    if (!o.confirm) throw new InputError('Docker is not running: pass --yes to install and start it as planned above, or start Docker yourself', 'yes');
    if (!(await o.confirm('install and start Docker now? [y/N] '))) throw new UnavailableError('Docker is needed to run Kiver; nothing was changed');
  }
  await applyPlan(planned, print);
}

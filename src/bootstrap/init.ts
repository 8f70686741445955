/**
 * `kiver node init`: preflight, a plan listing every change, then apply. Every check
 * runs before the first change, so bad input or a broken file leaves the host as it
 * was; a failing step stops with its reason and what was already done.
 */
import { InputError } from '../errors.js';
import { preflight, type CheckResult } from './preflight.js';
import { NodeHost } from './node-host.js';
import { applyPlan, BootstrapError, planSteps, printPlan, type Printer, type Step } from './step.js';
import { dirsStep } from './dirs.js';
import { daemonConfigStep } from './docker-daemon-config.js';
import { packagesStep } from './packages.js';
import { unitFilesStep } from './units.js';
import { processesStep } from './processes.js';
import { logShipperStep } from './log-shipper.js';
import { probeServer } from './server-probe.js';
import type { ComputeSettings, InitContext } from './context.js';

export const ROLES = ['compute', 'control'] as const;
export type Role = (typeof ROLES)[number];

export interface InitOptions extends Omit<ComputeSettings, 'servers' | 'joinToken'> {
  role: string;
  root: string;
  servers?: string[];
  joinToken?: string;
  plan: boolean;
  allowSharedLogRoot: boolean;
  minFreeBytes: number;
  /** Asked before applying when not --yes; undefined: no terminal (needs --yes). */
  confirm?: (question: string) => Promise<boolean>;
  yes: boolean;
}

export type InitOutcome = 'planned' | 'nothing-to-do' | 'applied' | 'declined';

function printChecks(checks: CheckResult[], print: Printer): void {
  print('preflight');
  for (const c of checks) print(`  ${c.level.padEnd(4)} ${c.name}: ${c.message}`);
}

/** The Docker part of the compute role, on its own: what `kiver up` runs on a host without Docker. */
export function dockerSteps(ctx: InitContext, changedFiles: Set<string>): Step[] {
  return [
    dirsStep(ctx.host, [{ path: '/etc/docker', mode: 0o755 }, { path: '/etc/kiver', mode: 0o700 }, { path: '/var/log/kiver', mode: 0o750 }]),
    daemonConfigStep(ctx),
    packagesStep(ctx.host, [ctx.s.dockerPackage]),
  ];
}

export function computeSteps(ctx: InitContext, print: Printer): Step[] {
  const changed = new Set<string>();
  return [
    ...dockerSteps(ctx, changed),
    dirsStep(ctx.host, [{ path: ctx.s.dataRoot, mode: 0o755 }, { path: ctx.s.logRoot, mode: 0o755 }, { path: '/var/lib/kiver', mode: 0o700 }]),
    unitFilesStep(ctx, changed),
    processesStep(ctx, changed),
    logShipperStep(ctx, print),
  ];
}

/** Runs preflight, prints the plan and applies it. */
export async function nodeInit(o: InitOptions, print: Printer): Promise<InitOutcome> {
  if (!(ROLES as readonly string[]).includes(o.role)) throw new InputError(`--role: expected one of ${ROLES.join(', ')}, got "${o.role}"`, 'role');
  if (o.role === 'control') throw new BootstrapError('--role control is not built yet: run `kiver server --store etcd://…` on control hosts by hand (README, "Moving the control plane to etcd")');
  if (process.getuid?.() !== 0) throw new BootstrapError('kiver node init installs packages and starts daemons: run it as root (sudo) — nothing was changed');
  if (!o.servers?.length) throw new InputError('--server: a compute node needs the URL of a Kiver server', 'server');
  for (const s of o.servers) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new InputError(`--server: "${s}" is not a URL (e.g. http://10.0.0.1:7700)`, 'server');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InputError(`--server: "${s}" must be http:// or https://`, 'server');
  }
  if (!o.joinToken) throw new InputError('--join-token: a compute node needs the join token (the server\'s join.token file), or KIVER_JOIN_TOKEN', 'join-token');
  if (!/^[a-z0-9][a-z0-9+.-]+$/.test(o.dockerPackage)) throw new InputError(`--docker-package: "${o.dockerPackage}" is not a Debian package name`, 'docker-package');
  for (const [flag, p] of [['data-root', o.dataRoot], ['log-root', o.logRoot], ['docker-root', o.dockerRoot]] as const) {
    if (!p.startsWith('/') || p.split('/').includes('..')) throw new InputError(`--${flag}: expected an absolute path without "..", got "${p}"`, flag);
  }

  const host = new NodeHost(o.root);
  const pm = host.processManager();
  const ctx: InitContext = { host, manager: pm.kind, s: { ...o, servers: o.servers, joinToken: o.joinToken } };

  const checks = await preflight(host, { role: 'compute', logRoot: o.logRoot, dataRoot: o.dataRoot, dockerRoot: o.dockerRoot, allowSharedLogRoot: o.allowSharedLogRoot, minFreeBytes: o.minFreeBytes, ports: [] });
  printChecks(checks, print);
  const failed = checks.filter((c) => c.level === 'fail');
  if (failed.length) throw new BootstrapError(`preflight failed: ${failed.map((c) => `${c.name}: ${c.message}`).join('; ')} — nothing was changed`);
  const server = await probeServer(o.servers, o.joinToken, o.node);
  print(`  ok   server: ${server} accepts the join token`);

  const planned = await planSteps(computeSteps(ctx, print));
  const count = planned.reduce((n, p) => n + p.changes.length, 0);
  print(`plan (role compute, node ${o.node}${host.isRealRoot ? '' : `, root ${host.root}`}; processes: ${pm.kind === 'systemd' ? 'systemd units' : `Kiver's supervisor — ${pm.why}`})`);
  printPlan(planned, print);
  if (count === 0) {
    print('nothing to do: this host already is a compute node as asked');
    return 'nothing-to-do';
  }
  if (o.plan) {
    print(`${count} change(s) planned; nothing was changed (--plan)`);
    return 'planned';
  }
  if (!o.yes) {
    if (!o.confirm) throw new InputError('not a terminal: pass --yes to apply the plan (or --plan to only show it)', 'yes');
    if (!(await o.confirm(`apply these ${count} change(s)? [y/N] `))) return 'declined';
  }
  print('apply');
  await applyPlan(planned, print);
  print(`done: ${count} change(s) applied; running \`kiver node init\` again changes nothing`);
  return 'applied';
}

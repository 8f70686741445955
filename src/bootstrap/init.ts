/**
 * `kiver node init`: preflight, a plan listing every change, then apply. Every check
 * runs before the first change, so bad input or a broken file leaves the host as it
 * was; a failing step stops with its reason and what was already done.
 */
import { InputError, UnavailableError } from '../errors.js';
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
import { existsSync, statSync } from 'node:fs';
import { connect, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { pkiStep } from './pki.js';
import {
  bundleHint, bundleStep, CONTROL_CONFIG_FILE, CONTROL_DIR, controlFilesStep, controlLeaves, controlProcessesStep, ETCD_DATA,
  membershipStep, MONITORING_DIR, SNAPSHOT_DIR, type ControlContext, type ControlSettings,
} from './control.js';

export const ROLES = ['compute', 'control'] as const;
export type Role = (typeof ROLES)[number];

/** What only the control role reads (the CLI fills in the defaults). */
export interface ControlOptions {
  etcdJoin?: string;
  joinFrom?: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  apiPort: number;
  snapshotEverySeconds: number;
  snapshotKeep: number;
  withMonitoring: boolean;
}

export interface InitOptions extends Omit<ComputeSettings, 'servers' | 'joinToken'>, Partial<ControlOptions> {
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

/** Prints the checks; stops when one failed. */
function printChecks(checks: CheckResult[], print: Printer): void {
  print('preflight');
  for (const c of checks) print(`  ${c.level.padEnd(4)} ${c.name}: ${c.message}`);
  const failed = checks.filter((c) => c.level === 'fail');
  if (failed.length) throw new BootstrapError(`preflight failed: ${failed.map((c) => `${c.name}: ${c.message}`).join('; ')} — nothing was changed`);
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
  if (process.getuid?.() !== 0) throw new BootstrapError('kiver node init installs packages and starts daemons: run it as root (sudo) — nothing was changed');
  if (o.role === 'control') return controlInit(o, print);
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
  const server = await probeServer(o.servers, o.joinToken);
  print(`  ok   server: ${server} accepts the join token`);
  return planAndApply(o, host, pm, 'compute', computeSteps(ctx, print), print);
}

/** Stops on a failed check; prints the plan; applies it when asked to. */
async function planAndApply(o: InitOptions, host: NodeHost, pm: ReturnType<NodeHost['processManager']>, role: Role, steps: Step[], print: Printer, after?: () => void): Promise<InitOutcome> {
  const planned = await planSteps(steps);
  const count = planned.reduce((n, p) => n + p.changes.length, 0);
  print(`plan (role ${role}, node ${o.node}${host.isRealRoot ? '' : `, root ${host.root}`}; processes: ${pm.kind === 'systemd' ? 'systemd units' : `Kiver's supervisor — ${pm.why}`})`);
  printPlan(planned, print);
  if (count === 0) {
    print(`nothing to do: this host already is a ${role} node as asked`);
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
  after?.();
  return 'applied';
}

/** The first non-internal IPv4 address of this machine. */
function defaultAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

function tcpReachable(url: URL, ms: number): Promise<string | undefined> {
  return new Promise((res) => {
    const s = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 2379), timeout: ms });
    s.once('connect', () => { s.destroy(); res(undefined); });
    s.once('timeout', () => { s.destroy(); res(`no answer within ${ms / 1000} s`); });
    s.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? e.message));
  });
}

export function controlSteps(ctx: ControlContext): Step[] {
  const { host, c } = ctx;
  const changed = new Set<string>();
  return [
    packagesStep(host, ['etcd-server', 'openssl', ...(c.withMonitoring ? ['prometheus', 'prometheus-alertmanager'] : [])]),
    dirsStep(host, [{ path: '/etc/kiver', mode: 0o700 }, { path: CONTROL_DIR, mode: 0o700 }, { path: ETCD_DATA, mode: 0o700 }, { path: SNAPSHOT_DIR, mode: 0o700 },
      ...(c.withMonitoring ? [{ path: MONITORING_DIR, mode: 0o700 }] : []), { path: '/var/log/kiver', mode: 0o750 }]),
    bundleStep(ctx),
    pkiStep(host, controlLeaves(c), !c.etcdJoin),
    membershipStep(ctx),
    controlFilesStep(ctx, changed),
    controlProcessesStep(ctx, changed),
  ];
}

async function controlInit(o: InitOptions, print: Printer): Promise<InitOutcome> {
  const address = o.address ?? defaultAddress();
  if (!address) throw new InputError('--address: no non-loopback IPv4 address found; pass the address other control nodes reach this one at', 'address');
  if (!isIP(address) && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(address)) throw new InputError(`--address: "${address}" is not an IP address or host name`, 'address');
  let join: URL | undefined;
  if (o.etcdJoin !== undefined) {
    try {
      join = new URL(o.etcdJoin);
    } catch {
      throw new InputError(`--etcd-join: "${o.etcdJoin}" is not a URL (e.g. https://10.0.0.1:2379)`, 'etcd-join');
    }
    if (join.protocol !== 'https:' || !join.port || join.pathname !== '/') throw new InputError(`--etcd-join: "${o.etcdJoin}" must be https://HOST:PORT, a client URL of a member (members speak TLS only)`, 'etcd-join');
  }
  if (o.joinFrom !== undefined) {
    if (!join) throw new InputError('--join-from: only with --etcd-join', 'join-from');
    if (!existsSync(o.joinFrom) || !statSync(o.joinFrom).isDirectory()) throw new InputError(`--join-from: ${o.joinFrom} is not a directory`, 'join-from');
  }
  if ((o.snapshotEverySeconds ?? 3600) < 1) throw new InputError('--snapshot-every must be at least 1s', 'snapshot-every');
  const host = new NodeHost(o.root);
  const pm = host.processManager();
  const c: ControlSettings = {
    node: o.node, address, clientPort: o.etcdClientPort ?? 2379, peerPort: o.etcdPeerPort ?? 2380, apiPort: o.apiPort ?? 7700,
    etcdJoin: join ? `https://${join.host}` : undefined, joinFrom: o.joinFrom,
    snapshotEverySeconds: o.snapshotEverySeconds ?? 3600, snapshotKeep: o.snapshotKeep ?? 24, withMonitoring: !!o.withMonitoring,
  };
  const ctx: ControlContext = { host, manager: pm.kind, c };
  // Ports are ours once this host is a control node: checked only before the first apply.
  const fresh = !existsSync(host.path(CONTROL_CONFIG_FILE));
  const checks = await preflight(host, { role: 'control', logRoot: o.logRoot, dataRoot: CONTROL_DIR, dockerRoot: CONTROL_DIR, allowSharedLogRoot: true, minFreeBytes: o.minFreeBytes,
    ports: fresh ? [c.clientPort, c.peerPort, c.apiPort] : [], portsHost: address });
  printChecks(checks, print);
  if (join && fresh) {
    const why = await tcpReachable(join, 5000);
    if (why) throw new UnavailableError(`--etcd-join: ${c.etcdJoin} is not reachable (${why}) — nothing was changed`);
    print(`  ok   etcd-join: ${c.etcdJoin} answers`);
  }
  return planAndApply(o, host, pm, 'control', controlSteps(ctx), print, () => {
    if (!c.etcdJoin) print(bundleHint(ctx));
  });
}

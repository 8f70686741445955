/**
 * Preflight: what must hold before `kiver node init` changes anything. Each check
 * reads only; a failure names what is wrong and how to fix it (or the flag that
 * accepts it), a warning is printed and does not stop the run.
 */
import { existsSync, readdirSync, readFileSync, statSync, statfsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { release } from 'node:os';
import type { NodeHost } from './node-host.js';

export interface CheckResult {
  name: string;
  level: 'ok' | 'warn' | 'fail';
  message: string;
}

export interface PreflightOptions {
  role: 'compute' | 'control';
  /** Node paths (as on the node). */
  logRoot: string;
  dataRoot: string;
  dockerRoot: string;
  allowSharedLogRoot: boolean;
  /** Bytes that must be free where Docker keeps images and containers. */
  minFreeBytes: number;
  /** TCP ports this role will listen on. */
  ports: number[];
  /** The address they are checked on (default every address). */
  portsHost?: string;
}

/** The nearest existing directory at or above p (a directory the init will create is judged by its parent). */
function existingAncestor(p: string): string {
  let cur = p;
  while (!existsSync(cur)) {
    const up = dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return cur;
}

export function osRelease(host: NodeHost): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      for (const line of readFileSync(host.path(f), 'utf8').split('\n')) {
        const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
        if (m) out[m[1]] = m[2].replace(/^["']|["']$/g, '');
      }
      return out;
    } catch {
      /* try the next */
    }
  }
  return out;
}

function checkOs(host: NodeHost): CheckResult {
  const os = osRelease(host);
  const name = os.PRETTY_NAME ?? os.ID ?? 'unknown';
  if (os.ID !== 'debian') return { name: 'os', level: 'fail', message: `${name}: kiver node init supports Debian 12 or newer (found ID=${os.ID ?? 'none'} in ${host.path('/etc/os-release')})` };
  const v = Number(os.VERSION_ID);
  if (!(v >= 12)) return { name: 'os', level: 'fail', message: `${name}: Debian 12 or newer is needed (VERSION_ID=${os.VERSION_ID ?? 'none'})` };
  return { name: 'os', level: 'ok', message: name };
}

function checkKernel(): CheckResult {
  const r = release();
  const [maj, min] = r.split('.').map(Number);
  if (maj < 4 || (maj === 4 && min < 19)) return { name: 'kernel', level: 'fail', message: `kernel ${r}: Docker's overlay2 and cgroup limits need 4.19 or newer` };
  let fs = '';
  try {
    fs = readFileSync('/proc/filesystems', 'utf8');
  } catch {
    /* no /proc */
  }
  const overlay = /\boverlay\b/.test(fs) || existsSync(`/lib/modules/${r}/kernel/fs/overlayfs`);
  if (!overlay) return { name: 'kernel', level: 'fail', message: `kernel ${r} has no overlay filesystem (modprobe overlay), which Docker's overlay2 storage needs` };
  if (!existsSync('/proc/sys/net/ipv4/ip_forward')) return { name: 'kernel', level: 'fail', message: `kernel ${r}: no IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)` };
  return { name: 'kernel', level: 'ok', message: `${r}, overlay, IPv4 forwarding` };
}

function checkCgroups(): CheckResult {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const ctl = readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/);
    const missing = ['cpu', 'memory'].filter((c) => !ctl.includes(c));
    if (missing.length) return { name: 'cgroups', level: 'fail', message: `cgroup v2 without the ${missing.join(', ')} controller(s): CPU and memory limits would not hold` };
    return { name: 'cgroups', level: 'ok', message: 'v2 (cpu, memory)' };
  }
  let table = '';
  try {
    table = readFileSync('/proc/cgroups', 'utf8');
  } catch {
    return { name: 'cgroups', level: 'fail', message: 'no /proc/cgroups: cgroups are not available' };
  }
  const enabled = new Set(table.split('\n').filter((l) => /\s1$/.test(l.trim())).map((l) => l.split(/\s+/)[0]));
  const missing = ['cpu', 'memory'].filter((c) => !enabled.has(c));
  if (missing.length) return { name: 'cgroups', level: 'fail', message: `cgroup v1 without the ${missing.join(', ')} controller(s) enabled: CPU and memory limits would not hold` };
  return { name: 'cgroups', level: 'ok', message: 'v1 (cpu, memory); v2 is preferred but not required' };
}

function checkDisk(host: NodeHost, o: PreflightOptions): CheckResult {
  const where = existingAncestor(host.path(o.dockerRoot));
  const s = statfsSync(where);
  const free = s.bavail * s.bsize;
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (free < o.minFreeBytes) return { name: 'disk', level: 'fail', message: `${gib(free)} free under ${o.dockerRoot} (on ${where}); at least ${gib(o.minFreeBytes)} needed (--min-free-disk)` };
  return { name: 'disk', level: 'ok', message: `${gib(free)} free for ${o.dockerRoot}` };
}

/** A running NTP client: systemd-timesyncd, chrony, ntpd or openntpd (by process name). */
function checkTimeSync(): CheckResult {
  const names = new Set(['systemd-timesyn', 'chronyd', 'ntpd', 'openntpd']);
  let found: string | undefined;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        if (names.has(comm)) found = comm;
      } catch {
        /* gone */
      }
      if (found) break;
    }
  } catch {
    /* no /proc */
  }
  if (found) return { name: 'time sync', level: 'ok', message: `${found} running` };
  // Leases and certificates tolerate some drift; a container's clock is its host's.
  return { name: 'time sync', level: 'warn', message: 'no NTP client running (systemd-timesyncd, chrony, ntpd); install one unless the host clock is synced from outside (containers, VMs)' };
}

/** The log root must not share a filesystem with `/`: a log flood must never fill the root disk (MISSION M11). */
function checkLogRoot(host: NodeHost, o: PreflightOptions): CheckResult {
  const at = existingAncestor(host.path(o.logRoot));
  const same = statSync(at).dev === statSync(host.path('/')).dev;
  if (!same) return { name: 'log root', level: 'ok', message: `${o.logRoot} is on its own filesystem` };
  if (o.allowSharedLogRoot) return { name: 'log root', level: 'warn', message: `${o.logRoot} is on the same filesystem as / (accepted by --allow-shared-log-root): a log flood can fill the root disk` };
  return {
    name: 'log root',
    level: 'fail',
    message: `${o.logRoot} is on the same filesystem as /: mount a partition of its own there (a log flood must not fill the root disk), or pass --allow-shared-log-root`,
  };
}

function portFree(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, host, () => s.close(() => res(true)));
  });
}

async function checkPorts(o: PreflightOptions): Promise<CheckResult> {
  if (o.ports.length === 0) return { name: 'ports', level: 'ok', message: o.role === 'compute' ? 'none needed (the agent only dials out)' : "held by this control node's own processes" };
  const busy: number[] = [];
  for (const p of o.ports) if (!(await portFree(p, o.portsHost))) busy.push(p);
  if (busy.length) return { name: 'ports', level: 'fail', message: `port(s) ${busy.join(', ')} in use; stop what listens there` };
  return { name: 'ports', level: 'ok', message: `${o.ports.join(', ')} free` };
}

export async function preflight(host: NodeHost, o: PreflightOptions): Promise<CheckResult[]> {
  // A control node runs no replicas: no log root of theirs to check.
  return [checkOs(host), checkKernel(), checkCgroups(), checkDisk(host, o), checkTimeSync(), ...(o.role === 'compute' ? [checkLogRoot(host, o)] : []), await checkPorts(o)];
}

/**
 * Low-level helpers for the test-host harness (hosts.ts): running commands, finding and
 * killing processes through /proc, mounts through /proc/self/mountinfo, and IPv4
 * prefixes. Linux only; the callers run as root.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv (never through a shell). Rejects on a non-zero exit unless allowFail. */
export function cmd(
  argv: string[],
  opts: { allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, env: opts.env }, (err, stdout, stderr) => {
      let code = 0;
      if (err) {
        const c = (err as NodeJS.ErrnoException).code as unknown;
        code = typeof c === 'number' ? c : c === 'ENOENT' ? 127 : 1;
        if (!stderr) stderr = err.message;
      }
      const res = { code, stdout: String(stdout), stderr: String(stderr) };
      if (code !== 0 && !opts.allowFail) reject(new Error(`${argv.join(' ')} exited with ${code}: ${res.stderr.trim().slice(0, 1000)}`));
      else resolve(res);
    });
  });
}

// ---------------------------------------------------------------------------
// processes

export interface Proc {
  pid: number;
  ppid: number;
  /** R, S, D, Z, T, ... from /proc/PID/stat */
  state: string;
  /** start time in clock ticks since boot (with pid: identifies a process across pid reuse) */
  start: number;
  argv: string[];
  /** inode of the process's network namespace */
  netns?: number;
}

function readStat(pid: number): { state: string; ppid: number; start: number } | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], ppid: Number(f[1]), start: Number(f[19]) };
}

/** Every process on the machine (kernel threads included, with empty argv). */
export function listProcs(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = readStat(pid);
    if (!st) continue;
    let argv: string[] = [];
    let netns: number | undefined;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`).toString('utf8').split('\0');
      if (argv[argv.length - 1] === '') argv.pop();
    } catch {
      /* gone */
    }
    try {
      const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      if (m) netns = Number(m[1]);
    } catch {
      /* gone, or a kernel thread */
    }
    out.push({ pid, ...st, argv, netns });
  }
  return out;
}

/** True while pid runs (a zombie counts as gone). With `start`, also checks it is the same process. */
export function isAlive(pid: number, start?: number): boolean {
  const st = readStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return start === undefined || st.start === start;
}

export function procStart(pid: number): number | undefined {
  return readStat(pid)?.start;
}

/** This process and its ancestors: never to be killed by a sweep. */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    pid = readStat(pid)?.ppid ?? 0;
  }
  return out;
}

/** roots plus every descendant of them (by ppid), excluding `except`. */
export function withDescendants(roots: Iterable<number>, procs: Proc[], except = new Set<number>()): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (out.has(pid) || except.has(pid)) continue;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Sends `signal` to every pid, then waits until all are gone; returns those still alive at the deadline. */
export async function killAndWait(pids: Iterable<number>, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<number[]> {
  const list = [...pids];
  for (const pid of list) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
  return waitGone(list, timeoutMs);
}

export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter((p) => isAlive(p));
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// mounts

function decodeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` in this mount namespace (stacked mounts repeat). */
export function mountsUnder(dir: string): string[] {
  const base = dir.replace(/\/+$/, '');
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = decodeMountPath(f[4]);
    if (mp === base || mp.startsWith(base + '/')) out.push(mp);
  }
  return out;
}

/** Unmounts everything at or below dir, deepest first (lazily when busy); returns what is left. */
export async function unmountUnder(dir: string): Promise<string[]> {
  for (let round = 0; round < 20; round++) {
    const mps = mountsUnder(dir);
    if (mps.length === 0) return [];
    const sorted = [...new Set(mps)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
    for (const mp of sorted) {
      const r = await cmd(['umount', mp], { allowFail: true });
      if (r.code !== 0) await cmd(['umount', '-l', mp], { allowFail: true });
    }
  }
  return mountsUnder(dir);
}

// ---------------------------------------------------------------------------
// IPv4 prefixes

export interface Prefix {
  net: number;
  len: number;
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parsePrefix(s: string): Prefix {
  const [ip, len] = s.split('/');
  return { net: ipToInt(ip), len: len === undefined ? 32 : Number(len) };
}

function mask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  const m = mask(Math.min(a.len, b.len));
  return ((a.net & m) >>> 0) === ((b.net & m) >>> 0);
}

/** IPv4 prefixes of the root namespace's addresses and routes (all tables). */
export async function usedPrefixes(): Promise<{ prefix: Prefix; dev: string }[]> {
  const out: { prefix: Prefix; dev: string }[] = [];
  const addrs = JSON.parse((await cmd(['ip', '-j', '-4', 'addr'])).stdout || '[]') as {
    ifname: string;
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  for (const a of addrs) {
    for (const i of a.addr_info ?? []) if (i.family === 'inet') out.push({ prefix: { net: ipToInt(i.local), len: i.prefixlen }, dev: a.ifname });
  }
  const routes = JSON.parse((await cmd(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])).stdout || '[]') as { dst: string; dev?: string }[];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || !/^\d+\.\d+\.\d+\.\d+/.test(r.dst)) continue;
    out.push({ prefix: parsePrefix(r.dst), dev: r.dev ?? '' });
  }
  return out;
}

/** Network interface names in the root namespace. */
export function linkNames(): string[] {
  try {
    return readdirSync('/sys/class/net');
  } catch {
    return [];
  }
}

/** Named network namespaces (`ip netns list`). */
export function netnsNames(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/**
 * What bench:fleet and bench:burst share: a `kiver server` on SQLite or on a 3-member
 * etcd, a `kiver sim` fleet in its own process, and the readings (CPU share of a core
 * from /proc, RSS, event-loop delay from the server's /metrics, leader changes).
 *
 * BENCH_PROFILE=DIR runs the server under `node --cpu-prof` (profile written to DIR on exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from '../test/harness/etcd-cluster.js';
import { KIVER_BIN, ServerProcess, freePort, until } from '../test/harness/kiver.js';
import { ApiClient } from '../src/client/api-client.js';
import type { SimStats } from '../src/sim/fleet.js';

export type Backend = 'sqlite' | 'etcd';

export interface ControlPlane {
  server: ServerProcess;
  admin: ApiClient;
  joinToken: string;
  stop(): Promise<void>;
}

export async function startControlPlane(backend: Backend): Promise<ControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), `kiver-bench-${backend}-`));
  const etcd = backend === 'etcd' ? await EtcdCluster.start({ members: 3 }) : undefined;
  const store = etcd ? `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}` : `sqlite:${join(dir, 'kiver.db')}`;
  const profile = process.env.BENCH_PROFILE;
  // --cpu-prof is not allowed in NODE_OPTIONS: exec node with it (sh's $0 is node, "$@" kiver's argv).
  const wrap = profile ? ['/bin/sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${profile} "$@"`] : undefined;
  const server = new ServerProcess(dir, await freePort(), store, ['--node-grace', '30s'], { wrap });
  const stop = async () => {
    await server.kill(profile ? 'SIGTERM' : 'SIGKILL'); // a profile is written on a clean exit only
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await server.start();
    const admin = new ApiClient({ servers: [server.url], token: (await readFile(join(dir, 'admin.token'), 'utf8')).trim(), timeoutMs: 30_000 });
    const joinToken = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
    return { server, admin, joinToken, stop };
  } catch (err) {
    await stop(); // nothing left behind by a server that would not start
    throw err;
  }
}

/** `kiver sim` in a process of its own, so its CPU is measured apart from the server's. */
export class SimProcess {
  private proc?: ChildProcess;
  private out = '';
  stats?: SimStats;

  constructor(readonly url: string, readonly joinToken: string, readonly nodes: number, readonly extra: string[] = []) {}

  get pid(): number {
    return this.proc!.pid!;
  }

  async start(timeoutMs = 600_000): Promise<void> {
    this.proc = spawn(process.execPath, [KIVER_BIN, 'sim', '--nodes', String(this.nodes), '--server', this.url, '--stats-every', '1', ...this.extra], {
      env: { ...process.env, KIVER_JOIN_TOKEN: this.joinToken }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.out += d;
      const lines = this.out.split('\n');
      this.out = lines.pop() ?? '';
      for (const l of lines) {
        const i = l.indexOf(' {');
        if (i > 0) this.stats = JSON.parse(l.slice(i + 1)) as SimStats;
      }
    });
    let err = '';
    this.proc.stderr!.on('data', (d) => (err += d));
    await until(`${this.nodes} simulated nodes registered (${err})`, async () => {
      if (this.proc!.exitCode !== null) throw new Error(`kiver sim exited: ${err}`);
      return (this.stats?.registered ?? 0) >= this.nodes;
    }, timeoutMs, 500);
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc!.once('exit', r));
    this.proc.kill('SIGTERM');
    await done;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Share of one core a process used between start() and the returned stop(). */
export async function cpuMeter(pid: number): Promise<() => Promise<number>> {
  const c0 = await cpuSeconds(pid);
  const t0 = performance.now();
  return async () => (await cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
}

export async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/**
 * Event-loop delay as the server measures it (prom-client's monitorEventLoopDelay,
 * reset at every scrape): the worst and the p99 over scrape windows, and leader changes.
 */
export class ServerWatch {
  maxLagMs = 0;
  p99LagMs = 0;
  private timer?: NodeJS.Timeout;
  private busy = false;
  transitions = 0;

  constructor(private readonly url: string, private readonly everyMs = 5000) {}

  async scrape(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const text = await (await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      this.maxLagMs = Math.max(this.maxLagMs, 1000 * metric(text, 'kiver_process_nodejs_eventloop_lag_max_seconds'));
      this.p99LagMs = Math.max(this.p99LagMs, 1000 * metric(text, 'kiver_process_nodejs_eventloop_lag_p99_seconds'));
      this.transitions = metric(text, 'kiver_leader_transitions_total');
    } catch {
      /* a missed scrape widens the next window */
    } finally {
      this.busy = false;
    }
  }

  /** Starts a fresh window (the first scrape resets the server's histogram). */
  async start(): Promise<void> {
    await this.scrape();
    this.maxLagMs = 0;
    this.p99LagMs = 0;
    this.timer = setInterval(() => void this.scrape(), this.everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.scrape();
  }
}

export const p = (xs: number[], q: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] : NaN);
export const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
export { until };

/**
 * A real N-member etcd cluster on loopback for tests (Debian etcd-server, /usr/bin/etcd).
 *
 * Members run in their own session (spawn detached = setsid), so a wrapper that kills
 * the test's process group (e.g. `timeout`) does not take them down mid-test, and we
 * stop them ourselves: stop() kills every member, waits for it to exit, removes the
 * directory. An exit hook does the same if the test process ends early, and a small
 * watchdog shell does it if the test process is killed outright (no hook runs then, and
 * members in their own session would otherwise live on with their ports and ~120 MB).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/** PEM file paths of the TLS material, for clients. */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
}

export interface EtcdClusterOptions {
  members?: number;
  /**
   * Serve clients over TLS with client-certificate auth: a throwaway CA, a server
   * certificate for 127.0.0.1 and a client certificate are made with openssl.
   */
  tls?: boolean;
  /** Give up waiting for health after this long (default 30 s). */
  startTimeoutMs?: number;
  /**
   * More addresses to serve clients on (same ports), e.g. a test-host bridge's address, so
   * servers in network namespaces reach the cluster — and can be cut off from it there.
   */
  clientHosts?: string[];
}

const live = new Set<EtcdCluster>();

// Runs detached: once the test process is gone (or the cluster dir was removed by a
// normal stop), kill whatever member pids are listed and remove the dir.
const WATCHDOG = `
while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
if [ -d "$2" ]; then kill -9 $(cat "$2/pids" 2>/dev/null) 2>/dev/null; sleep 0.5; rm -rf "$2"; fi
`;
process.once('exit', () => {
  for (const c of live) c.killNow();
});

/** Ports the kernel hands out for port 0 are free right now (etcd binds them next). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function poll(cond: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`etcd harness: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET (or POST with a body) returning JSON; https with the cluster's CA and client cert. */
function httpJson(url: string, tls: EtcdTlsFiles | undefined, body?: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        timeout: 1000,
        // servername '': no SNI for an IP address (Node warns otherwise).
        ...(tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: '' } : {}),
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 400) return reject(new Error(`${url}: HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(data) as Record<string, unknown>);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A throwaway CA, a server certificate for 127.0.0.1, a client certificate (EC P-256). */
function makeTls(dir: string): { server: EtcdTlsFiles; client: EtcdTlsFiles } {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=kiver-test-ca', '-days', '2');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=kiver-test-${who}`);
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${who}.crt`), '-days', '2', ...(who === 'server' ? ['-extfile', f('server.ext')] : []));
  }
  return {
    server: { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') },
    client: { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key') },
  };
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
    private readonly initialCluster: string,
    private readonly serverTls?: EtcdTlsFiles,
    /** Client certificate and CA when started with tls: true. */
    readonly clientTls?: EtcdTlsFiles,
    private readonly clientHosts: string[] = [],
  ) {}

  /** Starts the cluster and resolves once every member reports healthy. */
  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    if (!existsSync(ETCD_BIN)) {
      throw new Error(`${ETCD_BIN} not found; install it with: apt-get install -y etcd-server`);
    }
    const n = opts.members ?? 3;
    const dir = mkdtempSync(join(tmpdir(), 'kiver-etcd-'));
    const ports = await freePorts(2 * n);
    let tls: ReturnType<typeof makeTls> | undefined;
    try {
      tls = opts.tls ? makeTls(dir) : undefined;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const members: EtcdMember[] = Array.from({ length: n }, (_, i) => ({
      name: `m${i}`,
      clientUrl: `${tls ? 'https' : 'http'}://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir: join(dir, `m${i}`),
      logFile: join(dir, `m${i}.log`),
    }));
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const cluster = new EtcdCluster(dir, members, initialCluster, tls?.server, tls?.client, opts.clientHosts);
    live.add(cluster);
    spawn('/bin/sh', ['-c', WATCHDOG, 'etcd-watchdog', String(process.pid), dir], { detached: true, stdio: 'ignore' }).unref();
    try {
      for (let i = 0; i < n; i++) cluster.spawnMember(i, 'new');
      await cluster.waitHealthy(opts.startTimeoutMs ?? 30_000);
      return cluster;
    } catch (err) {
      const logs = members.map((m) => `--- ${m.name}\n${tail(m.logFile)}`).join('\n');
      await cluster.stop();
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** Client URLs on another of the clientHosts addresses. */
  endpointsOn(host: string): string[] {
    return this.endpoints.map((u) => u.replace('127.0.0.1', host));
  }

  /** The members' client ports. */
  get clientPorts(): number[] {
    return this.endpoints.map((u) => Number(new URL(u).port));
  }

  private spawnMember(i: number, state: 'new' | 'existing'): void {
    const m = this.members[i];
    const out = openSync(m.logFile, 'a');
    const proc = spawn(ETCD_BIN, [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', [m.clientUrl, ...this.clientHosts.map((h) => m.clientUrl.replace('127.0.0.1', h))].join(','),
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', `kiver-test-${this.dir.slice(-6)}`,
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      '--logger', 'zap',
      '--log-level', 'warn',
      ...(this.serverTls
        ? ['--cert-file', this.serverTls.cert, '--key-file', this.serverTls.key,
           '--trusted-ca-file', this.serverTls.ca, '--client-cert-auth']
        : []),
    ], { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    m.proc = proc;
    this.writePids();
    m.exited = new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve();
      else proc.once('exit', () => resolve());
    });
    proc.once('error', () => {}); // reported through the exit/health wait
  }

  /** Polls /health of every running member until all say healthy (a leader exists). */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const running = this.members.filter((m) => m.proc && m.proc.exitCode === null && m.proc.signalCode === null);
    await poll(async () => {
      for (const m of running) {
        if (m.proc!.exitCode !== null) throw new Error(`${m.name} exited with ${m.proc!.exitCode}`);
        const body = (await httpJson(`${m.clientUrl}/health`, this.clientTls)) as { health?: string };
        if (body.health !== 'true') return false;
      }
      return true;
    }, 'all members healthy', timeoutMs);
  }

  /** Index of the current leader, asked of the running members. */
  async leader(timeoutMs = 10_000): Promise<number> {
    let found = -1;
    await poll(async () => {
      for (const m of this.members) {
        if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
        const st = (await httpJson(`${m.clientUrl}/v3/maintenance/status`, this.clientTls, {}).catch(() => undefined)) as
          | { leader?: string; header?: { member_id?: string } }
          | undefined;
        if (!st?.leader || st.leader === '0') continue;
        // Find which member has the leader's id.
        for (let i = 0; i < this.members.length; i++) {
          const other = this.members[i];
          if (!other.proc || other.proc.exitCode !== null || other.proc.signalCode !== null) continue;
          const os = (await httpJson(`${other.clientUrl}/v3/maintenance/status`, this.clientTls, {}).catch(() => undefined)) as
            | { header?: { member_id?: string } }
            | undefined;
          if (os?.header?.member_id === st.leader) {
            found = i;
            return true;
          }
        }
      }
      return false;
    }, 'a leader', timeoutMs);
    return found;
  }

  /** Sends a signal to one member and waits until it has exited (its ports are then free). */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.members[i];
    if (!m.proc) return;
    try {
      m.proc.kill(signal);
    } catch {
      // already gone
    }
    await m.exited;
    m.proc = undefined;
    this.writePids();
  }

  private writePids(): void {
    const pids = this.members.flatMap((m) => (m.proc?.pid ? [m.proc.pid] : []));
    try {
      writeFileSync(join(this.dir, 'pids'), pids.join(' '));
    } catch {
      // dir already removed by stop()
    }
  }

  /** Starts a stopped member again with its data directory. */
  async restart(i: number, timeoutMs = 30_000): Promise<void> {
    this.spawnMember(i, 'existing');
    await this.waitHealthy(timeoutMs);
  }

  /** Kills every member, waits for each to exit, removes the directory. Safe to call twice. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous last resort for process exit: no waiting possible there. */
  killNow(): void {
    for (const m of this.members) {
      try {
        m.proc?.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  logs(): string {
    return this.members.map((m) => `--- ${m.name}\n${tail(m.logFile)}`).join('\n');
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

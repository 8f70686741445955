/**
 * `kiver health` against real faults: a full log partition (a 4 MiB tmpfs under a
 * test host's --log-root), Docker down (the host's dockerd killed), a node
 * unreachable (its agent killed), most nodes gone (network), an etcd member down
 * (store), a dead monitoring endpoint, and no server at all. Each gives its code,
 * its text, every problem listed, and the CLI's exit code equal to the code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { createLogger } from '../src/log.js';
import { ApiClient } from '../src/client/api-client.js';
import type { HealthReport } from '../src/monitoring/health.js';
import { createHosts, sweepStale, type TestHosts } from './harness/hosts.js';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { KIVER_BIN, freePort, until } from './harness/kiver.js';

/** Runs `kiver health -o FORMAT` against url; resolves with exit code and stdout. */
function cli(url: string, token: string, ...args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [KIVER_BIN, 'health', ...args], { env: { ...process.env, KIVER_ADDR: url, KIVER_TOKEN: token }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.on('close', (code) => res({ code: code ?? -1, stdout }));
  });
}

describe('kiver health on test hosts', () => {
  let run: TestHosts;
  let server: KiverServer;
  let admin: ApiClient;
  let dir: string;
  let mounted = '';

  before(async () => {
    await sweepStale();
    run = await createHosts(2, { images: [] });
    dir = await mkdtemp(join(tmpdir(), 'kiver-health-'));
    server = await KiverServer.start({ dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', 'silent'), nodeLeaseTtl: 4, healthIntervalMs: 1000 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    // host-1's log partition: a 4 MiB tmpfs, so "full" is a few writes away.
    await mkdir(run.hosts[1].logRoot, { recursive: true });
    mounted = run.hosts[1].logRoot;
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'kiver-health-test', mounted]);
    for (const h of run.hosts) await h.startAgent({ servers: server.url, token: server.tokens.join, args: ['--no-docker-watchdog', '--no-guard'] });
  });
  after(async () => {
    if (mounted) execFileSync('umount', ['-l', mounted]); // before destroy(), which would find it left over
    await run?.destroy();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const health = () => admin.get<HealthReport>('/v1/health');
  const waitCode = (code: number, what: string) =>
    until(`health code ${code} (${what})`, async () => {
      const r = await health();
      return r.code === code ? r : false;
    }, 45_000, 300);

  it('healthy: code 0, exit 0, every output format', async () => {
    await waitCode(0, 'two ready nodes');
    const text = await cli(server.url, server.tokens.admin);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^0 healthy\n/);
    const influx = await cli(server.url, server.tokens.admin, '-o', 'influx');
    assert.equal(influx.stdout, 'kiver_health code=0i,problems=0i,text="healthy"\n');
    const prom = await cli(server.url, server.tokens.admin, '-o', 'prometheus');
    assert.match(prom.stdout, /^kiver_health_code 0$/m);
    const json = JSON.parse((await cli(server.url, server.tokens.admin, '-o', 'json')).stdout) as HealthReport;
    assert.deepEqual([json.code, json.text, json.problems], [0, 'healthy', []]);
  });

  it('log partition full → 6 disk problem, naming the node and path', async () => {
    await writeFile(join(mounted, 'filler'), Buffer.alloc(3.8 * 1024 * 1024));
    const r = await waitCode(6, 'disk');
    assert.equal(r.text, 'disk problem');
    assert.match(r.problems[0].message, new RegExp(`log partition ${mounted} on node host-1 is 9\\d % full`));
    const c = await cli(server.url, server.tokens.admin);
    assert.equal(c.code, 6);
    // kiver_health_code on /metrics follows (refreshed every second here).
    await until('kiver_health_code 6 on /metrics', async () => /^kiver_health_code 6$/m.test(await (await fetch(`${server.url}/metrics`)).text()), 15_000, 300);
  });

  it('Docker down on host-0 → 5 Docker problem wins over disk; both listed', async () => {
    await run.hosts[0].killDockerd();
    const r = await waitCode(5, 'docker');
    assert.equal(r.text, 'Docker problem');
    assert.deepEqual(r.problems.map((p) => p.code), [5, 6]);
    assert.match(r.problems[0].message, /Docker on node host-0 not answering/);
    assert.equal((await cli(server.url, server.tokens.admin)).code, 5);
  });

  it('node unreachable (agent killed) → 4 node problem', async () => {
    await run.hosts[0].killAgent();
    const r = await waitCode(4, 'node');
    assert.equal(r.text, 'node problem');
    assert.match(r.problems[0].message, /node host-0 is not ready/);
    // host-0's stale Docker report no longer counts; host-1's disk still does.
    assert.deepEqual(r.problems.map((p) => p.code), [4, 6]);
    assert.equal((await cli(server.url, server.tokens.admin)).code, 4);
  });

  it('every node unreachable at once → 2 network problem', async () => {
    await run.hosts[1].killAgent();
    const r = await waitCode(2, 'network');
    assert.equal(r.text, 'network problem');
    assert.match(r.problems[0].message, /2 of 2 nodes unreachable at once: host-0, host-1/);
    assert.equal((await cli(server.url, server.tokens.admin, '-o', 'influx')).code, 2);
  });
});

describe('kiver health: store and monitoring', () => {
  let etcd: EtcdCluster;
  let server: KiverServer;
  let admin: ApiClient;
  let dir: string;

  before(async () => {
    etcd = await EtcdCluster.start({ members: 3 });
    dir = await mkdtemp(join(tmpdir(), 'kiver-health-store-'));
    const store = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    server = await KiverServer.start({ dataDir: dir, store, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), healthIntervalMs: 1000 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
  });
  after(async () => {
    await server?.close();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a dead monitoring endpoint → 1 monitoring problem', async () => {
    assert.equal((await admin.get<HealthReport>('/v1/health')).code, 0);
    // A check that cannot run (a wrong token) is 8, not a generic exit code that would read as a cluster problem.
    const denied = await cli(server.url, 'kiver_admin_wrong');
    assert.equal(denied.code, 8);
    assert.match(denied.stdout, /^8 health check failed\n/);
    const dead = `http://127.0.0.1:${await freePort()}`;
    await admin.put('/v1/monitoring/config', { prometheus: [dead], alertmanager: [] });
    const r = await admin.get<HealthReport>('/v1/health');
    assert.equal(r.code, 1);
    assert.match(r.problems[0].message, new RegExp(`Prometheus ${dead} not healthy`));
    const bad = await admin.put('/v1/monitoring/config', { prometheus: ['file:///etc/passwd'], alertmanager: [] }).catch((e: Error) => e);
    assert.match(String(bad), /prometheus/);
    await admin.put('/v1/monitoring/config', { prometheus: [], alertmanager: [] });
  });

  it('an etcd member down → 3 store problem naming it; exit code 3', async () => {
    await etcd.kill(2);
    const r = await until('store problem', async () => {
      const x = await admin.get<HealthReport>('/v1/health');
      return x.code === 3 ? x : false;
    }, 30_000, 300);
    assert.equal(r.text, 'store problem');
    assert.match(r.problems[0].message, new RegExp(`store member ${etcd.endpoints[2].replace(/[.]/g, '\\.')} unhealthy`));
    assert.equal((await cli(server.url, server.tokens.admin)).code, 3);
  });

  it('no server answering → 7 control plane unreachable', async () => {
    const url = server.url;
    await server.close();
    const c = await cli(url, 'x');
    assert.equal(c.code, 7);
    assert.match(c.stdout, /^7 control plane unreachable\n {2}\[7\] cannot reach the Kiver server/);
    server = undefined as unknown as KiverServer;
  });
});

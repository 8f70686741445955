/**
 * bench:failover — how long Kiver is unavailable for writes when a control-plane
 * member dies, on a real 3-member etcd cluster with two `kiver server` processes:
 *
 *  1. kill -9 of the leading server → first successful API write through the other
 *     server, and → the new leader has placed a service created after the kill
 *     (controller takeover, bounded by the leader lease TTL);
 *  2. kill -9 of the etcd leader member → first successful write through Kiver's API;
 *  3. SIGTERM of the leading server (a planned restart) → the new leader placed a new service;
 *  4. the leading server cut off from etcd (iptables in its test host's namespace; its API
 *     stays up) → the new leader has placed a service created after the cut.
 *
 * Median of 5 each. Baseline measured in the same run: an etcd3 client with its
 * default fault handling doing the same write after the same member kill.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdCluster } from '../test/harness/etcd-cluster.js';
import { ServerProcess, freePort } from '../test/harness/kiver.js';
import { FakeAgent } from '../test/harness/fake-agent.js';
import { createHosts, sweepStale } from '../test/harness/hosts.js';
import { cutOff, heal } from '../test/harness/partition.js';
import { ApiClient } from '../src/client/api-client.js';
import type { ServiceView } from '../src/model/service.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
/** Empty: the server's default (2 s). */
const LEADER_TTL = process.env.BENCH_LEADER_TTL ?? '';
const ttlArgs = LEADER_TTL ? ['--leader-ttl', LEADER_TTL] : [];
/** BENCH_ONLY=member,cut (of server, sigterm, member, cut): run only those trials. */
const ONLY = process.env.BENCH_ONLY?.split(',');
const runs = (what: string) => !ONLY || ONLY.includes(what);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function firstSuccess(fn: () => Promise<unknown>, deadlineMs = 60_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      await fn();
      return Date.now() - t0;
    } catch (err) {
      if (process.env.BENCH_DEBUG) console.error(`  ${Date.now() - t0} ms: ${(err as Error).message}`);
      if (Date.now() - t0 > deadlineMs) throw new Error('no success before the deadline');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

await sweepStale();
// Two test hosts for the partition trials: a server in each, etcd reached over their bridge.
const run = await createHosts(2, { names: ['cp-0', 'cp-1'], images: [] });
const etcd = await EtcdCluster.start({ members: 3, clientHosts: [run.bridgeIp] });
const dir = await mkdtemp(join(tmpdir(), 'kiver-bench-failover-'));
const url = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
const servers = [new ServerProcess(dir, await freePort(), url, ttlArgs), new ServerProcess(dir, await freePort(), url, ttlArgs)];
const nsUrl = `etcd://${etcd.endpointsOn(run.bridgeIp).map((e) => e.replace('http://', '')).join(',')}`;
const nsServers = run.hosts.map((h) => new ServerProcess(dir, 7700, nsUrl, ttlArgs, { host: h.ip, wrap: h.nsenter([]) }));
const agents: FakeAgent[] = [];
try {
  for (const s of servers) await s.start();
  const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  const joinToken = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
  const admin = new ApiClient({ servers: servers.map((s) => s.url), token, timeoutMs: 3000 });
  for (const name of ['b1', 'b2', 'b3']) {
    const a = new FakeAgent(servers.map((s) => s.url), joinToken, name, 64, 256 * 2 ** 30);
    await a.start();
    agents.push(a);
  }
  let n = 0;
  const create = () => admin.post('/v1/services', { name: `f${n++}`, image: 'kiver/busybox', replicas: 1, cpu: 0.01, memory: 2 ** 23 });

  const placed = (c: ApiClient, name: string) => firstSuccess(async () => {
    const s = await c.get<ServiceView>(`/v1/services/${name}`);
    if (!s.replicas[0]?.node) throw new Error('not placed');
  });
  const leaderOf = async (c: ApiClient, among: ServerProcess[]) => {
    let l: ServerProcess | undefined;
    await firstSuccess(async () => {
      const u = (await c.get<{ url: string }>('/v1/cluster/leader')).url;
      l = among.find((s) => s.url === u);
      if (!l) throw new Error(`leader ${u} is not one of these servers`);
    });
    return l!;
  };
  console.log(`bench:failover — 3-member etcd, 2 kiver servers, leader TTL ${LEADER_TTL || '2s (default)'}, median of ${TRIALS}`);
  const apiWrite: number[] = [];
  const takeover: number[] = [];
  for (let i = 0; runs('server') && i < TRIALS; i++) {
    const leader = await leaderOf(admin, servers);
    await leader.kill('SIGKILL');
    const t0 = Date.now();
    apiWrite.push(await firstSuccess(create));
    await placed(admin, `f${n - 1}`);
    takeover.push(Date.now() - t0);
    await leader.start();
  }
  const handover: number[] = [];
  for (let i = 0; runs('sigterm') && i < TRIALS; i++) {
    const leader = await leaderOf(admin, servers);
    const t0 = Date.now();
    const exited = leader.kill('SIGTERM');
    await firstSuccess(create);
    await placed(admin, `f${n - 1}`);
    handover.push(Date.now() - t0);
    await exited;
    if (process.env.BENCH_DEBUG) console.error(`  SIGTERM → exit ${Date.now() - t0} ms`);
    await leader.start();
  }

  const f = (ms: number | undefined) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`);
  const load = () => `load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`;
  // Each figure as soon as it is measured (a long run on a busy machine may not reach the end).
  console.log(`kill -9 leading server → first API write via the other server:  ${f(median(apiWrite))}  (all: ${apiWrite.map(f).join(', ')}; ${load()})`);
  console.log(`kill -9 leading server → new leader placed a new service:         ${f(median(takeover))}  (all: ${takeover.map(f).join(', ')})`);
  console.log(`SIGTERM leading server → new leader placed a new service:        ${f(median(handover))}  (all: ${handover.map(f).join(', ')}; ${load()})`);
  const memberWrite: number[] = [];
  const baseline: number[] = [];
  const raw = new Etcd3({ hosts: etcd.endpoints });
  for (let i = 0; runs('member') && i < TRIALS; i++) {
    let m = await etcd.leader();
    await etcd.kill(m);
    memberWrite.push(await firstSuccess(create));
    await etcd.restart(m);
    await etcd.waitHealthy();
    m = await etcd.leader();
    await etcd.kill(m);
    baseline.push(await firstSuccess(async () => { await raw.put(`/bench/baseline/${i}`).value("x"); }));
    await etcd.restart(m);
    await etcd.waitHealthy();
  }
  raw.close();
  console.log(`kill -9 etcd leader member → first write through Kiver's API:     ${f(median(memberWrite))}  (all: ${memberWrite.map(f).join(', ')}; ${load()})`);
  console.log(`baseline: etcd3 client with default fault handling, same kill:    ${f(median(baseline))}  (all: ${baseline.map(f).join(', ')})`);

  // Partition trials: the loopback servers stop (SIGTERM hands over), the namespaced pair takes over.
  for (const s of servers) await s.kill('SIGTERM');
  for (const a of agents) a.stop();
  agents.length = 0;
  for (const s of nsServers) await s.start();
  const nsAdmin = new ApiClient({ servers: nsServers.map((s) => s.url), token, timeoutMs: 3000 });
  // New names: b1–b3 hold node credentials now, and a join token cannot re-register them.
  for (const name of ['c1', 'c2', 'c3']) {
    const a = new FakeAgent(nsServers.map((s) => s.url), joinToken, name, 64, 256 * 2 ** 30);
    await a.start();
    agents.push(a);
  }
  const cut: number[] = [];
  const ports = etcd.clientPorts;
  for (let i = 0; runs('cut') && i < TRIALS; i++) {
    const leader = await leaderOf(nsAdmin, nsServers);
    const host = run.hosts[nsServers.indexOf(leader)];
    await cutOff(host, run.bridgeIp, ports);
    const t0 = Date.now();
    try {
      // Written through the healthy server: what is measured is the controllers' takeover.
      const other = new ApiClient({ servers: [nsServers.find((s) => s !== leader)!.url], token, timeoutMs: 3000 });
      const name = `p${i}`;
      await firstSuccess(() => other.post('/v1/services', { name, image: 'kiver/busybox', replicas: 1, cpu: 0.01, memory: 2 ** 23 }));
      if (process.env.BENCH_DEBUG) {
        await firstSuccess(async () => {
          if ((await other.get<{ url: string }>('/v1/cluster/leader')).url === leader.url) throw new Error('same leader');
        });
        console.error(`  cut → new leader key ${Date.now() - t0} ms`);
      }
      await placed(other, name);
      cut.push(Date.now() - t0);
    } finally {
      await heal(host, run.bridgeIp, ports);
    }
    await firstSuccess(async () => {
      if ((await fetch(`${leader.url}/readyz`)).status !== 200) throw new Error('not ready yet');
    });
  }

  console.log(`leading server cut off from etcd → new leader placed a new service: ${f(median(cut))}  (all: ${cut.map(f).join(', ')}; ${load()})`);
  console.log(`ratio baseline/kiver (etcd member kill): ${(median(baseline) / Math.max(1, median(memberWrite))).toFixed(1)}×; targets: new leader placed ≤ 3 s, member kill ≤ 2 s`);
} finally {
  for (const a of agents) a.stop();
  for (const s of [...servers, ...nsServers]) await s.kill();
  await etcd.stop();
  await run.destroy();
  await rm(dir, { recursive: true, force: true });
}

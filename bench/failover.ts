/**
 * bench:failover — how long Kiver is unavailable for writes when a control-plane
 * member dies, on a real 3-member etcd cluster with two `kiver server` processes:
 *
 *  1. kill -9 of the leading server → first successful API write through the other
 *     server, and → the new leader has placed a service created after the kill
 *     (controller takeover, bounded by the leader lease TTL);
 *  2. kill -9 of the etcd leader member → first successful write through Kiver's API.
 *
 * Median of 5 each. Baseline measured in the same run: an etcd3 client with its
 * default fault handling doing the same write after the same member kill.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdCluster } from '../test/harness/etcd-cluster.js';
import { ServerProcess, freePort } from '../test/harness/kiver.js';
import { FakeAgent } from '../test/harness/fake-agent.js';
import { ApiClient } from '../src/client/api-client.js';
import type { ServiceView } from '../src/model/service.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
const LEADER_TTL = process.env.BENCH_LEADER_TTL ?? '10s';
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

const etcd = await EtcdCluster.start({ members: 3 });
const dir = await mkdtemp(join(tmpdir(), 'kiver-bench-failover-'));
const url = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
const servers = [new ServerProcess(dir, await freePort(), url, ['--leader-ttl', LEADER_TTL]), new ServerProcess(dir, await freePort(), url, ['--leader-ttl', LEADER_TTL])];
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

  const apiWrite: number[] = [];
  const takeover: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const leaderUrl = (await admin.get<{ url: string }>('/v1/cluster/leader')).url;
    const leader = servers.find((s) => s.url === leaderUrl)!;
    await leader.kill('SIGKILL');
    const t0 = Date.now();
    apiWrite.push(await firstSuccess(create));
    const name = `f${n - 1}`;
    await firstSuccess(async () => {
      const s = await admin.get<ServiceView>(`/v1/services/${name}`);
      if (!s.replicas[0]?.node) throw new Error('not placed');
    });
    takeover.push(Date.now() - t0);
    await leader.start();
  }

  const memberWrite: number[] = [];
  const baseline: number[] = [];
  const raw = new Etcd3({ hosts: etcd.endpoints });
  for (let i = 0; i < TRIALS; i++) {
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

  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`bench:failover — 3-member etcd, 2 kiver servers, leader TTL ${LEADER_TTL}, median of ${TRIALS}`);
  console.log(`kill -9 leading server → first API write via the other server:  ${f(median(apiWrite))}  (all: ${apiWrite.map(f).join(', ')})`);
  console.log(`kill -9 leading server → new leader placed a new service:         ${f(median(takeover))}  (all: ${takeover.map(f).join(', ')})`);
  console.log(`kill -9 etcd leader member → first write through Kiver's API:     ${f(median(memberWrite))}  (all: ${memberWrite.map(f).join(', ')})`);
  console.log(`baseline: etcd3 client with default fault handling, same kill:    ${f(median(baseline))}  (all: ${baseline.map(f).join(', ')})`);
  console.log(`ratio baseline/kiver (etcd member kill): ${(median(baseline) / Math.max(1, median(memberWrite))).toFixed(1)}×; target ≤ 5 s each`);
} finally {
  for (const a of agents) a.stop();
  for (const s of servers) await s.kill();
  await etcd.stop();
  await rm(dir, { recursive: true, force: true });
}

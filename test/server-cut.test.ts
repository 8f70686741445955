/**
 * A server cut off from etcd (its API still reachable) must not evict the cluster:
 * two `kiver server`s in their own test hosts on a 3-member etcd, three hosts with real
 * agents attached to the leading server; the leader's host drops every packet to etcd
 * (iptables in its namespace) for longer than the node grace. Agents must move to the
 * other server: no node goes NotReady, no replica moves, and /readyz tells the two apart.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, sweepStale, type TestHosts } from './harness/hosts.js';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { ServerProcess, until } from './harness/kiver.js';
import { cutOff, heal } from './harness/partition.js';
import { ApiClient } from '../src/client/api-client.js';
import type { ServiceView } from '../src/model/service.js';
import type { NodeView } from '../src/model/node.js';
import type { KiverEvent } from '../src/model/event.js';

const GRACE_S = 10;
const CUT_MS = 2 * GRACE_S * 1000;

describe('a server cut off from etcd', () => {
  let run: TestHosts;
  let etcd: EtcdCluster;
  let dir: string;
  let servers: ServerProcess[] = [];
  let admin: ApiClient;
  let token: string;

  before(async () => {
    await sweepStale();
    run = await createHosts(5, { names: ['cp-0', 'cp-1', 'n-0', 'n-1', 'n-2'] });
    etcd = await EtcdCluster.start({ members: 3, clientHosts: [run.bridgeIp] });
    dir = await mkdtemp(join(tmpdir(), 'kiver-cut-'));
    const store = `etcd://${etcd.endpointsOn(run.bridgeIp).map((e) => e.replace('http://', '')).join(',')}`;
    servers = run.hosts.slice(0, 2).map((h) => new ServerProcess(dir, 7700, store, ['--node-grace', `${GRACE_S}s`], { host: h.ip, wrap: h.nsenter([]) }));
    await servers[0].start();
    token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    const joinToken = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
    admin = new ApiClient({ servers: servers.map((s) => s.url), token, timeoutMs: 3000 });
    await until('cp-0 leads', async () => (await admin.get<{ url: string }>('/v1/cluster/leader')).url === servers[0].url);
    await servers[1].start();
    // Agents list the leader first, so they all talk to it until it turns sick.
    for (const h of run.hosts.slice(2)) {
      await h.startAgent({ servers: servers.map((s) => s.url), token: joinToken, args: ['--no-docker-watchdog'] });
    }
  });
  after(async () => {
    for (const s of servers) await s.kill();
    await run?.destroy();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('agents fail over to the healthy server: no node goes NotReady, no replica moves', async () => {
    await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', command: ['sleep', '86400'], replicas: 6, cpu: 0.05, memory: 2 ** 24 });
    const before_ = await until('6 running', async () => {
      const v = await admin.get<ServiceView>('/v1/services/web');
      return v.status.running === 6 ? v : false;
    }, 60_000);
    const placement = new Map(before_.replicas.map((r) => [r.ordinal, `${r.node}@${r.uid}`]));
    const ready = await fetch(`${servers[0].url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { leader: { url: string } }).leader.url, servers[0].url);

    const sick = run.hosts[0];
    await cutOff(sick, run.bridgeIp, etcd.clientPorts);
    const t0 = Date.now();
    let notReady = new Set<string>();
    let sickReadyz = 0;
    try {
      // The cut-off server reports itself unready soon; the agents' routes on it answer 503 at once.
      await until('cp-0 /readyz 503', async () => (await fetch(`${servers[0].url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 503, 10_000);
      sickReadyz = Date.now() - t0;
      const t = await fetch(`${servers[0].url}/v1/agent/heartbeat`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer x' }, body: '{"node":"n-0"}', signal: AbortSignal.timeout(2000),
      });
      assert.equal(t.status, 503);
      const direct = new ApiClient({ servers: [servers[1].url], token });
      while (Date.now() - t0 < CUT_MS) {
        const nodes = await direct.get<NodeView[]>('/v1/nodes').catch(() => undefined);
        for (const n of nodes ?? []) if (!n.ready) notReady.add(n.name);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await heal(sick, run.bridgeIp, etcd.clientPorts);
    }
    process.stderr.write(`# cut-off server unready after ${sickReadyz} ms\n`);
    assert.deepEqual([...notReady], [], 'no node went NotReady');
    const leader = await admin.get<{ url: string }>('/v1/cluster/leader');
    assert.equal(leader.url, servers[1].url, 'the healthy server leads');
    const after_ = await admin.get<ServiceView>('/v1/services/web');
    assert.equal(after_.status.running, 6);
    assert.deepEqual(new Map(after_.replicas.map((r) => [r.ordinal, `${r.node}@${r.uid}`])), placement, 'no replica moved');
    const evs = await admin.get<KiverEvent[]>('/v1/events?limit=500');
    assert.deepEqual(evs.filter((e) => e.reason === 'NodeNotReady' || e.reason === 'Rescheduled').map((e) => e.message), []);
    // Healed: the cut-off server is ready again.
    await until('cp-0 ready again', async () => (await fetch(`${servers[0].url}/readyz`)).status === 200, 30_000);
  });
});

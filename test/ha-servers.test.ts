/**
 * Several `kiver server` processes on a real 3-member etcd cluster: every server
 * serves the API, exactly one runs the controllers; kill -9 of the leader while a
 * scale is being placed → another server takes over and the scale completes
 * exactly once (every ordinal once, allocations equal to the replicas placed).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { ServerProcess, freePort, until } from './harness/kiver.js';
import { FakeAgent } from './harness/fake-agent.js';
import { ApiClient } from '../src/client/api-client.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import type { ServiceView } from '../src/model/service.js';
import type { NodeView } from '../src/model/node.js';
import type { Replica } from '../src/model/replica.js';

describe('HA servers on etcd', () => {
  let etcd: EtcdCluster;
  let dir: string;
  let servers: ServerProcess[];
  let admin: ApiClient;
  let store: Store;
  const agents: FakeAgent[] = [];

  before(async () => {
    etcd = await EtcdCluster.start({ members: 3 });
    dir = await mkdtemp(join(tmpdir(), 'kiver-ha-'));
    const url = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    store = await openStore(url);
    // Both servers share one data dir here (tokens and the secret key); on real hosts, copy them.
    servers = [];
    for (let i = 0; i < 2; i++) servers.push(new ServerProcess(dir, await freePort(), url, ['--leader-ttl', '10s', '--node-grace', '30s']));
    for (const s of servers) await s.start();
    const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    const join_ = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
    admin = new ApiClient({ servers: servers.map((s) => s.url), token, timeoutMs: 5000 });
    for (const name of ['h1', 'h2', 'h3']) {
      const a = new FakeAgent(servers.map((s) => s.url), join_, name, 8, 32 * 1024 ** 3);
      await a.start();
      agents.push(a);
    }
  });
  after(async () => {
    for (const a of agents) a.stop();
    for (const s of servers ?? []) await s.kill();
    await store?.close();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('exactly one leader; every server serves the API', async () => {
    const leader = await until('a leader', () => admin.get<{ url: string }>('/v1/cluster/leader'));
    assert.ok(servers.some((s) => s.url === leader.url));
    for (const s of servers) {
      const c = new ApiClient({ servers: [s.url], token: (await readFile(join(dir, 'admin.token'), 'utf8')).trim() });
      assert.equal((await c.get<{ url: string }>('/v1/cluster/leader')).url, leader.url);
    }
  });

  it('kill -9 of the leader during a scale: another server takes over and the scale completes exactly once', async () => {
    await admin.post('/v1/services', { name: 'burst', image: 'kiver/busybox', replicas: 3, cpu: 0.1, memory: 2 ** 26 });
    await until('3 running', async () => (await admin.get<ServiceView>('/v1/services/burst')).status.running === 3);
    const leaderUrl = (await admin.get<{ url: string }>('/v1/cluster/leader')).url;
    const leader = servers.find((s) => s.url === leaderUrl)!;
    const other = servers.find((s) => s !== leader)!;
    await admin.put('/v1/services/burst/scale', { replicas: 60 });
    await leader.kill('SIGKILL');
    const killedAt = Date.now();
    const newLeader = await until('the other server leads', async () => {
      const l = await admin.get<{ url: string }>('/v1/cluster/leader');
      return l.url === other.url ? l : false;
    }, 30_000);
    assert.equal(newLeader.url, other.url);
    const takeover = Date.now() - killedAt;
    const done = await until('scale to 60 complete', async () => {
      const s = await admin.get<ServiceView>('/v1/services/burst');
      return s.status.running === 60 ? s : false;
    }, 60_000);
    process.stderr.write(`# leader kill -9 → new leader in ${takeover} ms\n`);
    assert.deepEqual(done.replicas.map((r) => r.ordinal), Array.from({ length: 60 }, (_, i) => i), 'every ordinal exactly once');
    // Store-level check: replica keys and node allocations agree (nothing booked twice).
    const reps = (await store.list('/kiver/replicas/burst/')).kvs.map((kv) => JSON.parse(kv.value) as Replica);
    assert.equal(reps.length, 60);
    assert.equal(new Set(reps.map((r) => r.uid)).size, 60);
    const nodes = await admin.get<NodeView[]>('/v1/nodes');
    const booked = nodes.flatMap((n) => n.alloc.replicas.filter((id) => id.startsWith('burst/')));
    assert.equal(booked.length, 60);
    assert.equal(new Set(booked).size, 60);
    for (const n of nodes) assert.ok(n.alloc.cpuMilli <= n.cpus * 1000);
    // Restart the old leader: it joins as a follower.
    await leader.start();
    assert.equal((await admin.get<{ url: string }>('/v1/cluster/leader')).url, other.url);
  });
});

/**
 * Node loss and drain on the real server and store, with fake
 * agents (no containers): what moves, what stays bound, and how many replicas of
 * a service are ever down at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import type { ServiceView } from '../src/model/service.js';
import type { NodeView } from '../src/model/node.js';
import type { KiverEvent } from '../src/model/event.js';
import { FakeAgent } from './harness/fake-agent.js';
import { until } from './harness/kiver.js';

describe('cluster behaviour with fake agents', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const agents = new Map<string, FakeAgent>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-cluster-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 2 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    for (const name of ['n1', 'n2', 'n3', 'n4']) {
      const a = new FakeAgent(server.url, server.tokens.join, name);
      await a.start();
      agents.set(name, a);
    }
  });
  after(async () => {
    for (const a of agents.values()) a.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const svc = (name: string) => admin.get<ServiceView>(`/v1/services/${name}`);
  const running = (name: string, n: number) =>
    until(`${name} has ${n} running`, async () => {
      const s = await svc(name);
      return s.status.running === n ? s : false;
    });

  it('a lost node: stateless replicas move within the grace, local-data replicas stay bound and say so', async () => {
    await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', replicas: 3, cpu: 0.5, memory: 2 ** 28 });
    await admin.post('/v1/services', { name: 'db', image: 'kiver/busybox', replicas: 3, cpu: 0.5, memory: 2 ** 28, localData: true });
    const web = await running('web', 3);
    const db = await running('db', 3);
    // Lose a node that hosts both a web and a db replica.
    const victim = web.replicas.map((r) => r.node).find((n) => db.replicas.some((d) => d.node === n))!;
    const lostWeb = web.replicas.find((r) => r.node === victim)!;
    agents.get(victim)!.stop();
    const t0 = Date.now();
    const moved = await until('web replica rescheduled', async () => {
      const s = await svc('web');
      const r = s.replicas.find((x) => x.ordinal === lostWeb.ordinal)!;
      return r.node !== victim && r.state === 'running' ? r : false;
    }, 15_000);
    const took = Date.now() - t0;
    assert.notEqual(moved.uid, lostWeb.uid, 'a new incarnation');
    assert.ok(took < 2_000 + 10_000, `moved within grace + 10 s (took ${took} ms)`);
    const nodes = await admin.get<NodeView[]>('/v1/nodes');
    assert.equal(nodes.find((n) => n.name === victim)!.ready, false);
    const webNow = await svc('web');
    assert.equal(new Set(webNow.replicas.map((r) => r.node)).size, 3, 'still spread over distinct nodes');
    const bound = (await svc('db')).replicas.find((r) => r.node === victim)!;
    assert.equal(bound.state, 'unknown');
    assert.match(bound.lastError!, /owns local data and stays bound/);
    const evs = await admin.get<KiverEvent[]>(`/v1/events?object=node/${victim}`);
    assert.ok(evs.some((e) => e.reason === 'NodeNotReady'));
    // The node comes back: the moved replica is no longer assigned to it, the bound one is.
    const back = agents.get(victim)!; // the same node (its credential) registers again
    await back.start();
    const assigned = await back.sync();
    assert.ok(!assigned.some((r) => r.service === 'web' && r.ordinal === lostWeb.ordinal), 'moved replica not assigned to the returning node');
    assert.ok(assigned.some((r) => r.service === 'db' && r.node === victim));
    await running('db', 3);
  });

  it('drain moves every replica off, never more than one replica of a service down at a time', async () => {
    // 8 replicas on 4 nodes: the drained node holds two of them. Replicas take a second
    // to come up, so moving both at once would show two down to the 20 ms sampler.
    await admin.post('/v1/services', { name: 'api', image: 'kiver/busybox', replicas: 8, cpu: 0.25, memory: 2 ** 26 });
    await running('api', 8);
    for (const a of agents.values()) a.startDelayMs = 1000;
    const target = 'n1';
    const before_ = (await admin.get<{ id: string; service: string; desired: string }[]>(`/v1/replicas?node=${target}`)).filter((r) => r.service !== 'db');
    assert.ok(before_.filter((r) => r.service === 'api').length >= 2, `two api replicas on ${target}: ${before_.map((r) => r.id)}`);
    let maxDown = 0;
    let worst = '';
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const name of ['web', 'api']) {
          const s = await svc(name);
          const down = s.replicas.filter((r) => r.desired === 'run' && r.state !== 'running');
          if (down.length > maxDown) worst = `${name}: ${down.map((r) => `${r.id} ${r.state} on ${r.node}`).join(', ')}`;
          maxDown = Math.max(maxDown, down.length);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await admin.post(`/v1/nodes/${target}/drain`, { deadlineSeconds: 600 });
    await until('drained', async () => {
      const left = (await admin.get<{ service: string; desired: string }[]>(`/v1/replicas?node=${target}`)).filter((r) => r.desired === 'run' && r.service !== 'db');
      return left.length === 0;
    }, 20_000);
    await running('api', 8);
    await running('web', 3);
    sampling = false;
    await sampler;
    assert.ok(maxDown <= 1, `at most one replica of a service down at once (saw ${maxDown}: ${worst})`);
    const n = await admin.get<NodeView>(`/v1/nodes/${target}`);
    assert.equal(n.cordoned, true);
    assert.ok(n.alloc.replicas.every((id) => id.startsWith('db/')), `only local-data replicas stay: ${n.alloc.replicas}`);
    await admin.post(`/v1/nodes/${target}/uncordon`);
    assert.equal((await admin.get<NodeView>(`/v1/nodes/${target}`)).drain, undefined);
  });
});

/**
 * The service controller's own decisions, on the real store contract (in-memory
 * SQLite), the real cache and node index, with fake agents: a test writes what an
 * agent would report (replica status, node liveness) straight into the store. No
 * Docker, no HTTP: each decision (reschedule backoff, roll order, drain order,
 * scale) is checked step by step.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { openStore } from '../store/open.js';
import type { Compare, Store } from '../store/store.js';
import { StoreCache } from './cache.js';
import { NodeIndex } from './node-index.js';
import { EventRecorder } from './events.js';
import { ServiceController, rescheduleDelayMs } from './services.js';
import { createLogger } from '../log.js';
import { K } from '../model/keys.js';
import type { Node, NodeAlloc } from '../model/node.js';
import { applyDefaults, type Service, type ServiceCreate } from '../model/service.js';
import type { Replica, ReplicaState, ReplicaStatus } from '../model/replica.js';
import type { KiverEvent } from '../model/event.js';

const GiB = 1024 ** 3;

/** A controller over a fresh in-memory store; nodes and agents are played by the test. */
class Cluster {
  private constructor(
    readonly store: Store,
    readonly cache: StoreCache,
    readonly controller: ServiceController,
  ) {}

  static async start(fence?: (store: Store) => Promise<() => Compare | undefined>): Promise<Cluster> {
    const store = await openStore('sqlite::memory:');
    const cache = new StoreCache(store);
    await cache.start();
    const log = createLogger('test', 'silent');
    // Decisions one node at a time: no observation window, no brake (test/eviction-brake.test.ts covers those).
    const controller = new ServiceController(store, cache, new NodeIndex(cache), new EventRecorder(store, log), log, 32, await fence?.(store), { observeMs: 0, threshold: 1 });
    controller.start();
    return new Cluster(store, cache, controller);
  }

  async stop(): Promise<void> {
    await this.controller.stop();
    await this.cache.stop();
    await this.store.close();
  }

  /** Waits until the cache has every write and the controller has nothing left to do. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await this.cache.sync();
      await this.controller.idle();
    }
  }

  /** A node that registered and heartbeats (its lease-bound alive key exists). */
  async addNode(name: string, cpus = 2, memory = 4 * GiB): Promise<void> {
    const node: Node = { name, address: '127.0.0.1', cpus, memory, labels: {}, cordoned: false, lease: 0, registeredAt: new Date().toISOString() };
    await this.store.put(K.node(name), JSON.stringify(node));
    await this.store.put(K.alive(name), '{}');
  }

  /** The node's lease expired: it is NotReady. */
  async loseNode(name: string): Promise<void> {
    await this.store.delete(K.alive(name));
  }

  async editNode(name: string, fn: (n: Node) => Node): Promise<void> {
    const n = JSON.parse((await this.store.get(K.node(name)))!.value) as Node;
    await this.store.put(K.node(name), JSON.stringify(fn(n)));
  }

  async createService(c: ServiceCreate): Promise<void> {
    const now = new Date().toISOString();
    const svc: Service = { spec: applyDefaults(c), uid: randomUUID(), generation: 1, createdAt: now, updatedAt: now };
    await this.store.put(K.service(c.name), JSON.stringify(svc));
  }

  /** Writes a changed service the way the API does (generation bump = rolling update). */
  async editService(name: string, fn: (s: Service) => Service): Promise<void> {
    const s = JSON.parse((await this.store.get(K.service(name)))!.value) as Service;
    await this.store.put(K.service(name), JSON.stringify(fn(s)));
  }

  replicas(service: string): Replica[] {
    return this.cache.group(K.replicas, service).map((kv) => JSON.parse(kv.value) as Replica).sort((a, b) => a.ordinal - b.ordinal);
  }

  replica(service: string, ordinal: number): Replica {
    const r = this.replicas(service).find((x) => x.ordinal === ordinal);
    assert.ok(r, `replica ${service}/${ordinal} exists`);
    return r;
  }

  alloc(node: string): NodeAlloc | undefined {
    return this.cache.get<NodeAlloc>(K.alloc(node));
  }

  /**
   * Plays the agents: reports `state` for the given replicas (default: every replica
   * assigned to a ready node), `removed` for those marked for deletion.
   */
  async report(service: string, state: ReplicaState = 'running', only?: (r: Replica) => boolean): Promise<void> {
    for (const r of this.replicas(service)) {
      if (r.node === '' || (only && !only(r))) continue;
      const st: ReplicaStatus = {
        node: r.node, uid: r.uid, generation: r.generation, state: r.desired === 'delete' ? 'removed' : state,
        restartCount: 0, updatedAt: new Date().toISOString(),
      };
      await this.store.put(K.status(service, r.ordinal), JSON.stringify(st));
    }
  }

  async events(object: string): Promise<KiverEvent[]> {
    const res = await this.store.list(K.events);
    return res.kvs.map((kv) => JSON.parse(kv.value) as KiverEvent).filter((e) => e.object === object);
  }
}

describe('service controller decisions', () => {
  let c: Cluster;
  // A fresh store per test: none depends on another having run.
  beforeEach(async () => {
    c = await Cluster.start();
  });
  afterEach(async () => {
    await c?.stop();
  });

  it('reschedule backoff: 0 for the first move, then 5 s doubling, capped at 5 min', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 6, 7, 20].map(rescheduleDelayMs), [0, 5_000, 10_000, 20_000, 40_000, 160_000, 300_000, 300_000]);
  });

  it('a replica on a lost node moves at once the first time, then only after its backoff', async () => {
    for (const n of ['rb-1', 'rb-2', 'rb-3']) await c.addNode(n);
    await c.createService({ name: 'rb', image: 'kiver/busybox', replicas: 1 });
    await c.settle();
    const first = c.replica('rb', 0);
    assert.notEqual(first.node, '');
    await c.report('rb');

    await c.loseNode(first.node);
    await c.settle();
    const moved = c.replica('rb', 0);
    assert.notEqual(moved.node, first.node, 'moved off the lost node at once');
    assert.notEqual(moved.uid, first.uid, 'a new incarnation');
    assert.equal(moved.reschedule?.count, 1);
    assert.deepEqual(c.alloc(first.node)?.replicas, [], 'the lost node\'s share is freed');
    assert.deepEqual(c.alloc(moved.node)?.replicas, ['rb/0']);
    assert.ok((await c.events('replica/rb/0')).some((e) => e.reason === 'Rescheduled' && e.message.includes(`from ${first.node} to ${moved.node}`)));
    await c.report('rb');

    // Lost again right away: the second move waits rescheduleDelayMs(1) = 5 s.
    await c.loseNode(moved.node);
    await c.settle();
    assert.equal(c.replica('rb', 0).node, moved.node, 'no second move inside the backoff window');
    assert.equal(c.replica('rb', 0).uid, moved.uid);

    // The window has passed (as if the last move were 6 s ago): it moves to the last ready node.
    await c.store.put(K.replica('rb', 0), JSON.stringify({ ...c.replica('rb', 0), reschedule: { count: 1, lastAt: new Date(Date.now() - 6_000).toISOString() } }));
    await c.settle();
    const third = ['rb-1', 'rb-2', 'rb-3'].find((n) => n !== first.node && n !== moved.node);
    assert.equal(c.replica('rb', 0).node, third);
    assert.equal(c.replica('rb', 0).reschedule?.count, 2);
  });

  it('a replica of a local-data service stays on its lost node and says so', async () => {
    for (const n of ['ld-1', 'ld-2']) await c.addNode(n);
    await c.createService({ name: 'ld', image: 'kiver/busybox', replicas: 1, localData: true });
    await c.settle();
    const r = c.replica('ld', 0);
    await c.loseNode(r.node);
    await c.settle();
    assert.equal(c.replica('ld', 0).node, r.node);
    assert.equal(c.replica('ld', 0).uid, r.uid);
    assert.ok((await c.events('replica/ld/0')).some((e) => e.reason === 'BoundToLostNode'));
  });

  it('rolling update: one replica at a time, lowest ordinal first, the next only once it runs', async () => {
    for (const n of ['ro-1', 'ro-2', 'ro-3']) await c.addNode(n);
    await c.createService({ name: 'ro', image: 'kiver/busybox:1', replicas: 3 });
    await c.settle();
    await c.report('ro');
    await c.settle();
    await c.editService('ro', (s) => ({ ...s, spec: { ...s.spec, image: 'kiver/busybox:2' }, generation: 2 }));
    const order: number[] = [];
    for (let step = 0; step < 3; step++) {
      await c.settle();
      const rolled = c.replicas('ro').filter((r) => r.generation === 2);
      assert.equal(rolled.length, step + 1, `step ${step}: exactly one more replica rolled (${rolled.map((r) => r.ordinal)})`);
      const next = rolled.find((r) => !order.includes(r.ordinal))!;
      order.push(next.ordinal);
      assert.equal(next.spec.image, 'kiver/busybox:2');
      assert.ok((await c.events('service/ro')).some((e) => e.reason === 'RollingUpdate'));
      // Until the agent reports the new one running, nothing else rolls.
      await c.settle();
      assert.equal(c.replicas('ro').filter((r) => r.generation === 2).length, step + 1, 'waits for the rolled replica');
      await c.report('ro', 'running', (r) => r.ordinal === next.ordinal);
    }
    assert.deepEqual(order, [0, 1, 2]);
    // Rolled in place: same nodes, each node's allocation still holds exactly its replica.
    for (const r of c.replicas('ro')) assert.deepEqual(c.alloc(r.node)?.replicas, [`ro/${r.ordinal}`]);
  });

  it('rolling update takes a replica that is down anyway first, and none while another is down', async () => {
    for (const n of ['rd-1', 'rd-2', 'rd-3']) await c.addNode(n);
    await c.createService({ name: 'rd', image: 'kiver/busybox:1', replicas: 3 });
    await c.settle();
    await c.report('rd');
    await c.report('rd', 'crashloop', (r) => r.ordinal === 2);
    await c.settle();
    await c.editService('rd', (s) => ({ ...s, spec: { ...s.spec, image: 'kiver/busybox:2' }, generation: 2 }));
    await c.settle();
    assert.deepEqual(c.replicas('rd').map((r) => r.generation), [1, 1, 2], 'the crash-looping replica 2 goes first');
    // Replica 2 at generation 2 is not running yet: replicas 0 and 1 wait.
    await c.settle();
    assert.deepEqual(c.replicas('rd').map((r) => r.generation), [1, 1, 2]);
    await c.report('rd', 'running', (r) => r.ordinal === 2);
    await c.settle();
    assert.deepEqual(c.replicas('rd').map((r) => r.generation), [2, 1, 2]);
  });

  it('a rolling update re-fits on its own node counting its old share free; one that cannot fit is blocked there', async () => {
    await c.addNode('rf-1', 2);
    await c.addNode('rf-2', 4);
    await c.editNode('rf-2', (n) => ({ ...n, cordoned: true })); // room elsewhere must not matter
    await c.createService({ name: 'rf', image: 'kiver/busybox', replicas: 1, cpu: 1 });
    await c.settle();
    await c.report('rf');
    // 2 cores on a 2-core node: fits only once its own 1 core is given back.
    await c.editService('rf', (s) => ({ ...s, spec: { ...s.spec, cpu: 2 }, generation: 2 }));
    await c.settle();
    assert.equal(c.replica('rf', 0).generation, 2);
    assert.equal(c.replica('rf', 0).node, 'rf-1');
    assert.equal(c.alloc('rf-1')?.cpuMilli, 2000);
    await c.report('rf');
    await c.editService('rf', (s) => ({ ...s, spec: { ...s.spec, cpu: 3 }, generation: 3 }));
    await c.settle();
    const r = c.replica('rf', 0);
    assert.equal(r.generation, 2);
    assert.equal(r.node, 'rf-1');
    assert.equal(c.alloc('rf-1')?.cpuMilli, 2000);
    const ev = (await c.events('replica/rf/0')).find((e) => e.reason === 'UpdateBlocked');
    assert.equal(ev?.message, 'cannot apply generation 3 on rf-1: not enough CPU');
  });

  it('drain moves one replica of a service at a time, each once the previous one runs elsewhere', async () => {
    // Two nodes of 2 CPUs hold 4 replicas of 1 CPU: two of them on the node to drain.
    await c.addNode('dr-a');
    await c.addNode('dr-b');
    await c.createService({ name: 'dr', image: 'kiver/busybox', replicas: 4, cpu: 1 });
    await c.settle();
    await c.report('dr');
    const onA = c.replicas('dr').filter((r) => r.node === 'dr-a').map((r) => r.ordinal);
    assert.equal(onA.length, 2);
    await c.addNode('dr-c');
    await c.addNode('dr-d');
    await c.editNode('dr-a', (n) => ({ ...n, cordoned: true, drain: { startedAt: new Date().toISOString(), deadline: new Date(Date.now() + 3_600_000).toISOString() } }));
    await c.settle();
    const moved1 = onA.filter((o) => c.replica('dr', o).node !== 'dr-a');
    assert.deepEqual(moved1, [onA[0]], 'the lower ordinal moves first, alone');
    // Until it runs on its new node, the other stays.
    await c.settle();
    assert.equal(c.replica('dr', onA[1]).node, 'dr-a');
    await c.report('dr');
    await c.settle();
    assert.notEqual(c.replica('dr', onA[1]).node, 'dr-a', 'the second moves once the first runs');
    assert.deepEqual(c.alloc('dr-a')?.replicas, []);
  });

  it('drain past its deadline moves every remaining replica at once', async () => {
    await c.addNode('dd-a');
    await c.addNode('dd-b');
    await c.createService({ name: 'dd', image: 'kiver/busybox', replicas: 4, cpu: 1 });
    await c.settle();
    await c.report('dd');
    await c.addNode('dd-c');
    await c.addNode('dd-d');
    await c.editNode('dd-a', (n) => ({ ...n, cordoned: true, drain: { startedAt: new Date(Date.now() - 2_000).toISOString(), deadline: new Date(Date.now() - 1_000).toISOString() } }));
    await c.settle();
    assert.equal(c.replicas('dd').filter((r) => r.node === 'dd-a').length, 0, 'none waits for another to run');
  });

  it('scale: the replica set follows the last count written, while the controller is mid-way', async () => {
    for (const n of ['sc-1', 'sc-2', 'sc-3']) await c.addNode(n, 8, 16 * GiB);
    await c.createService({ name: 'sc', image: 'kiver/busybox', replicas: 1 });
    for (const n of [5, 2, 6, 3]) {
      await c.editService('sc', (s) => ({ ...s, spec: { ...s.spec, replicas: n } }));
      await c.cache.sync();
    }
    await c.settle();
    await c.report('sc');
    await c.settle();
    const live = c.replicas('sc').filter((r) => r.desired === 'run');
    assert.deepEqual(live.map((r) => r.ordinal), [0, 1, 2]);
    assert.ok(live.every((r) => r.node !== ''));
    assert.deepEqual(c.replicas('sc').map((r) => r.ordinal), [0, 1, 2], 'removed replicas are gone once their agents confirm');
    const booked = ['sc-1', 'sc-2', 'sc-3'].flatMap((n) => c.alloc(n)?.replicas ?? []).sort();
    assert.deepEqual(booked, ['sc/0', 'sc/1', 'sc/2'], 'allocations hold exactly the live replicas');
  });

  it('a plan whose commit fails books nothing: the re-plan sees the node as it was', async () => {
    await c.stop();
    // The first commit fails (a stale leader fence); the ones after it pass.
    let commits = 0;
    c = await Cluster.start(async (store) => {
      const rev = await store.put(K.leader, '{}');
      return () => ({ key: K.leader, modRevision: commits++ === 0 ? rev + 1000 : rev });
    });
    await c.addNode('pc-1', 2);
    await c.createService({ name: 'pc', image: 'kiver/busybox', replicas: 1, cpu: 1.5 });
    // The controller re-queues a refused plan's services after a short delay: poll.
    for (const deadline = Date.now() + 10_000; !c.replicas('pc')[0]?.node && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 20));
      await c.settle();
    }
    assert.ok(commits > 1, 'the first plan was refused');
    assert.equal(c.replica('pc', 0).node, 'pc-1', 'placed on the re-plan: 1.5 of 2 cores, not 3 of 2');
    assert.equal(c.alloc('pc-1')?.cpuMilli, 1500);
  });

  it('a replica no node fits stays pending with the reason, and is placed once a node fits', async () => {
    await c.addNode('pe-small', 2);
    await c.createService({ name: 'pe', image: 'kiver/busybox', replicas: 1, cpu: 16 });
    await c.settle();
    const r = c.replica('pe', 0);
    assert.equal(r.node, '');
    assert.equal(r.pendingReason, '0/1 nodes fit: 1 not enough CPU');
    assert.ok((await c.events('service/pe')).some((e) => e.reason === 'FailedScheduling'));
    await c.addNode('pe-big', 32, 64 * GiB);
    await c.settle();
    assert.equal(c.replica('pe', 0).node, 'pe-big');
  });
});

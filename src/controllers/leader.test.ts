/**
 * Leader election and the write fence, on the real SQLite store: one leader at a time,
 * hand-over, stepping down, and — through a running service controller — that a
 * leader deposed in the middle of a plan writes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import { SqliteStore } from '../store/sqlite.js';
import type { Store, TxnRequest, TxnResult } from '../store/store.js';
import { createLogger } from '../log.js';
import { K } from '../model/keys.js';
import type { Node } from '../model/node.js';
import type { Service } from '../model/service.js';
import { LeaderElection, type LeaderInfo } from './leader.js';
import { StoreCache } from './cache.js';
import { NodeIndex } from './node-index.js';
import { EventRecorder } from './events.js';
import { ServiceController } from './services.js';

const log = createLogger('test', 'silent');

function openStore(t: TestContext): SqliteStore {
  const dir = mkdtempSync(join(tmpdir(), 'kiver-leader-'));
  const store = SqliteStore.open(join(dir, 'kiver.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

function elect(t: TestContext, store: Store, id: string, ttl = 2): LeaderElection {
  const e = new LeaderElection(store, { id, url: `http://${id}` }, log, ttl);
  t.after(() => e.stop());
  return e;
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The store with some methods replaced; the rest run on the real store. */
function wrap(store: Store, overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop in overrides) return overrides[prop as keyof Store];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Counts 'elected' / 'deposed' events. */
function track(e: LeaderElection): { elected: number; deposed: number } {
  const n = { elected: 0, deposed: 0 };
  e.on('elected', () => n.elected++);
  e.on('deposed', () => n.deposed++);
  return n;
}

describe('leader election', () => {
  it('elects exactly one leader, whose fence is the leader key at its revision', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a');
    const b = elect(t, store, 'b');
    const na = track(a);
    await a.start();
    await b.start();
    assert.equal(a.isLeader, true);
    assert.equal(b.isLeader, false);
    assert.equal(b.fence(), undefined, 'a follower has no fence');
    const kv = (await store.get(K.leader))!;
    assert.deepEqual(a.fence(), { key: K.leader, modRevision: kv.modRevision });
    assert.ok(kv.lease > 0, 'the leader key is bound to a lease');
    const info = (await b.leader()) as LeaderInfo;
    assert.equal(info.id, 'a');
    assert.equal(info.url, 'http://a');
    assert.ok(!Number.isNaN(Date.parse(info.since)));
    assert.equal(na.elected, 1);
  });

  it('a stopped leader hands over at once; its fence no longer writes', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 60);
    const b = elect(t, store, 'b', 60);
    const na = track(a);
    await a.start();
    await b.start();
    const stale = a.fence()!;
    await a.stop();
    assert.equal(a.isLeader, false);
    assert.equal(na.deposed, 1);
    // TTL 60 s: only the hand-over (delete of the key, watched by b) can elect b this fast.
    await until('b elected', () => b.isLeader, 5_000);
    assert.equal((await b.leader())?.id, 'b');
    const res = await store.txn({ compare: [stale], success: [{ type: 'put', key: '/kiver/x', value: '1' }] });
    assert.equal(res.succeeded, false, "a deposed leader's write is fenced off");
    assert.equal((await store.txn({ compare: [b.fence()!], success: [{ type: 'put', key: '/kiver/x', value: '1' }] })).succeeded, true);
    await a.stop(); // idempotent
    assert.equal(na.deposed, 1);
  });

  it('a leader whose lease expired steps down; the other takes over', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 1);
    const b = elect(t, store, 'b', 1);
    const na = track(a);
    await a.start();
    await b.start();
    await store.revokeLease((await store.get(K.leader))!.lease);
    await until('a steps down', () => !a.isLeader, 5_000);
    await until('b elected', () => b.isLeader, 5_000);
    assert.equal(na.deposed, 1);
    assert.equal(a.fence(), undefined);
  });

  it('a leader that cannot renew for half its TTL steps down on its own', async (t) => {
    const store = openStore(t);
    let hang = false;
    const stuck = wrap(store, { keepAlive: (lease: number) => (hang ? new Promise<number>(() => {}) : store.keepAlive(lease)) });
    const a = elect(t, stuck, 'a', 1);
    const na = track(a);
    await a.start();
    const t0 = Date.now();
    hang = true;
    await until('a steps down', () => !a.isLeader, 5_000);
    const took = Date.now() - t0;
    assert.ok(took >= 400, `stepped down after ${took} ms, not before half the TTL`);
    assert.equal(na.deposed, 1);
  });

  it('a follower campaigns when the leader key is deleted, not before', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 60);
    const b = elect(t, store, 'b', 60);
    await a.start();
    await b.start();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.isLeader, false);
    await store.delete(K.leader);
    await until('b elected after the delete', () => b.isLeader, 5_000);
  });

  it('a deposed leader\'s running controller writes nothing: leadership taken away mid-plan', async (t) => {
    const store = openStore(t);
    const now = new Date().toISOString();
    for (const name of ['n1', 'n2', 'n3']) {
      const node: Node = { name, address: '127.0.0.1', cpus: 4, memory: 8 * 2 ** 30, labels: {}, cordoned: false, lease: 0, registeredAt: now };
      await store.put(K.node(name), JSON.stringify(node));
      await store.put(K.alive(name), '{}');
    }
    const a = elect(t, store, 'a', 60);
    const b = elect(t, store, 'b', 60);
    await a.start();
    assert.equal(a.isLeader, true);

    // The controller's view of the store: its first fenced commit finds that, while it
    // planned, a lost its lease and b was elected — a still believes it leads.
    const attempts: { req: TxnRequest; res: TxnResult }[] = [];
    let takenOver = false;
    const controllerStore = wrap(store, {
      txn: async (req: TxnRequest) => {
        if (req.compare.some((c) => c.key === K.leader) && !takenOver) {
          takenOver = true;
          await store.delete(K.leader);
          await b.start();
          assert.equal(b.isLeader, true);
        }
        const res = await store.txn(req);
        attempts.push({ req, res });
        return res;
      },
    });
    const cache = new StoreCache(store);
    await cache.start();
    t.after(() => cache.stop());
    const controller = new ServiceController(controllerStore, cache, new NodeIndex(cache), new EventRecorder(store, log), log, 32, () => a.fence());
    t.after(() => controller.stop());
    controller.start();

    const svc: Service = {
      spec: { name: 'web', image: 'kiver/busybox', command: [], env: {}, secretEnv: {}, ports: [], cpu: 0.5, cpuPolicy: 'shares', memory: 2 ** 28, replicas: 3, localData: false },
      uid: randomUUID(), generation: 1, createdAt: now, updatedAt: now,
    };
    await store.put(K.service('web'), JSON.stringify(svc));
    await until('the controller tried to place web', () => attempts.length >= 2, 10_000);
    assert.equal(a.isLeader, true, 'a has not noticed yet: only the fence stands between it and the store');
    assert.ok(attempts.every((x) => x.req.compare.some((c) => c.key === K.leader)), 'every controller write carries the fence');
    assert.ok(attempts.every((x) => !x.res.succeeded), 'every fenced write of the deposed leader failed');
    assert.deepEqual((await store.list(K.replicas)).kvs, [], 'no replica was written');
    assert.deepEqual((await store.list(K.allocs)).kvs, [], 'no node allocation was written');
  });
});

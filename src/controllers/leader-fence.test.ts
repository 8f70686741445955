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
import { createLogger, type Logger } from '../log.js';
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
  const e = new LeaderElection(store, { id, url: `http://${id}` }, log, { ttlSeconds: ttl });
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
    let hung = 0;
    const stuck = wrap(store, { keepAlive: (lease: number) => (hang ? (hung++, new Promise<number>(() => {})) : store.keepAlive(lease)) });
    const a = elect(t, stuck, 'a', 2);
    const na = track(a);
    await a.start();
    const t0 = Date.now();
    hang = true;
    await until('a steps down', () => !a.isLeader, 5_000);
    const took = Date.now() - t0;
    assert.ok(took >= 900, `stepped down after ${took} ms, not before half the TTL`);
    assert.ok(took < 3_000, `stepped down after ${took} ms, well before the lease (2 s) could be taken over`);
    assert.equal(hung, 1, 'no second renewal while one is in flight');
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

  it('a renewal that fails for another reason than an expired lease does not step down by itself', async (t) => {
    const store = openStore(t);
    let failNext = false;
    let failed = 0;
    const flaky = wrap(store, {
      keepAlive: (lease: number) => {
        if (!failNext) return store.keepAlive(lease);
        failNext = false;
        failed++;
        return Promise.reject(Object.assign(new Error('unavailable'), { status: 503 }));
      },
    });
    const a = elect(t, flaky, 'a', 2);
    const na = track(a);
    await a.start();
    failNext = true;
    await until('the failing renewal ran', () => failed === 1, 5_000);
    // Checked before the next tick (500 ms): that one steps down, half the TTL having passed.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(a.isLeader, true);
    assert.equal(na.deposed, 0);
  });

  it('a renewal answered "lease not found" steps down at once, before half the TTL', async (t) => {
    const store = openStore(t);
    let expired = false;
    const gone = wrap(store, {
      keepAlive: (lease: number) => (expired ? Promise.reject(Object.assign(new Error('lease not found'), { status: 404 })) : store.keepAlive(lease)),
    });
    const a = elect(t, gone, 'a', 6);
    await a.start();
    const t0 = Date.now();
    expired = true;
    await until('a steps down', () => !a.isLeader, 10_000);
    const took = Date.now() - t0;
    assert.ok(took < 2_900, `stepped down ${took} ms after the first failed renewal (1.5 s ticks), not after half the TTL (3 s)`);
  });

  it('a follower never grants itself a lease while a leader exists', async (t) => {
    const store = openStore(t);
    let grants = 0;
    const a = elect(t, store, 'a', 1);
    const b = elect(t, wrap(store, { grantLease: (ttl: number) => (grants++, store.grantLease(ttl)) }), 'b', 1);
    await a.start();
    await b.start();
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(grants, 0);
    assert.equal(b.isLeader, false);
  });

  it('a campaign that loses the race does not lead, and gives its lease back', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 60);
    await a.start();
    const leaderKv = (await store.get(K.leader))!;
    const revoked: number[] = [];
    let granted = 0;
    // b reads no leader (as if a won between b's read and b's write).
    const racing = wrap(store, {
      get: async (key: string) => (key === K.leader ? undefined : store.get(key)),
      grantLease: async (ttl: number) => (granted = await store.grantLease(ttl)),
      revokeLease: async (lease: number) => { revoked.push(lease); await store.revokeLease(lease); },
    });
    const b = elect(t, racing, 'b', 60);
    await b.start();
    assert.equal(b.isLeader, false);
    assert.ok(granted > 0);
    assert.deepEqual(revoked, [granted]);
    assert.deepEqual(await store.get(K.leader), leaderKv, "a's key untouched");
  });

  it('a failed campaign (store error) is retried by the periodic tick', async (t) => {
    const store = openStore(t);
    let fail = true;
    const a = elect(t, wrap(store, { grantLease: (ttl: number) => (fail ? ((fail = false), Promise.reject(new Error('store down'))) : store.grantLease(ttl)) }), 'a', 1);
    await a.start();
    assert.equal(a.isLeader, false);
    await until('a elected on a later tick', () => a.isLeader, 5_000);
  });

  it('the tick campaigns even when the watch missed the delete', async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 1);
    const deaf = wrap(store, { watch: async () => ({ cancel: async () => {} }) });
    const b = elect(t, deaf, 'b', 1);
    await a.start();
    await b.start();
    await store.delete(K.leader);
    await until('b elected by its tick', () => b.isLeader, 5_000);
  });

  it("stopping a leader that was deposed without noticing leaves the new leader's key alone", async (t) => {
    const store = openStore(t);
    const a = elect(t, store, 'a', 60);
    const b = elect(t, store, 'b', 60);
    await a.start();
    await store.delete(K.leader);
    await b.start();
    assert.equal(a.isLeader, true, 'a has not noticed');
    const bKey = (await store.get(K.leader))!;
    await a.stop();
    assert.deepEqual(await store.get(K.leader), bKey);
    assert.equal(b.isLeader, true);
  });

  it('logs each transition with its reason (what an operator reads after a failover)', async (t) => {
    const store = openStore(t);
    const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
    const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void lines.push({ level, obj, msg });
    const logger = { info: at('info'), warn: at('warn'), debug: at('debug'), error: at('error') } as unknown as Logger;
    let failCampaign = true;
    let expired = false;
    const s = wrap(store, {
      grantLease: (ttl: number) => (failCampaign ? ((failCampaign = false), Promise.reject(new Error('store down'))) : store.grantLease(ttl)),
      keepAlive: (lease: number) => (expired ? Promise.reject(Object.assign(new Error('lease 7 not found'), { status: 404 })) : store.keepAlive(lease)),
    });
    const a = new LeaderElection(s, { id: 'a', url: 'http://a' }, logger, { ttlSeconds: 1 });
    t.after(() => a.stop());
    await a.start();
    await until('elected', () => a.isLeader, 5_000);
    expired = true;
    await until('stepped down', () => !a.isLeader, 5_000);
    const seen = lines.map((l) => [l.level, l.msg, l.obj]);
    assert.deepEqual(seen.find((l) => l[1] === 'campaign failed'), ['warn', 'campaign failed', { err: 'store down' }]);
    assert.deepEqual(seen.find((l) => l[1] === 'elected leader'), ['info', 'elected leader', { id: 'a' }]);
    assert.deepEqual(seen.find((l) => l[1] === 'leader lease renewal failed'), ['warn', 'leader lease renewal failed', { err: 'lease 7 not found' }]);
    const down = seen.filter((l) => l[1] === 'stepping down as leader');
    assert.equal(down.length, 1);
    assert.deepEqual(down[0], ['warn', 'stepping down as leader', { why: 'leader lease expired' }]);
  });

});

/**
 * What the service routes do on a conflict, on an in-memory SQLite store through the
 * real API (fastify inject, the one error mapping): a name taken, a write that loses
 * its compare-and-swap to a concurrent one, a service being deleted. A test arms a
 * competing write that lands just before the route's own commit.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { openStore } from '../../store/open.js';
import type { Store, TxnRequest } from '../../store/store.js';
import { StoreCache } from '../../controllers/cache.js';
import { EventRecorder } from '../../controllers/events.js';
import { TokenAuth } from '../auth.js';
import { buildApi } from '../server.js';
import { SecretBox } from '../../secrets.js';
import { createLogger } from '../../log.js';
import { K } from '../../model/keys.js';
import type { Service } from '../../model/service.js';

const TOKEN = 'test-admin-token';

/** The store, with a hook run before every transaction (to land a competing write first). */
function withHook(store: Store, hook: (req: TxnRequest) => Promise<void>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'txn') return async (req: TxnRequest) => { await hook(req); return target.txn(req); };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('service routes on a conflict', () => {
  let inner: Store;
  let cache: StoreCache;
  let app: FastifyInstance;
  /** Competing writes still to land, each just before a route's commit on the service key. */
  let race: ((s: Service) => Service)[] = [];

  beforeEach(async () => {
    inner = await openStore('sqlite::memory:');
    const store = withHook(inner, async (req) => {
      const key = req.compare.find((c) => c.key.startsWith(K.services))?.key;
      const change = key && req.compare.some((c) => c.key === key && c.modRevision > 0) ? race.shift() : undefined;
      if (!key || !change) return;
      const cur = JSON.parse((await inner.get(key))!.value) as Service;
      await inner.put(key, JSON.stringify(change(cur)));
    });
    cache = new StoreCache(store);
    await cache.start();
    const log = createLogger('test', 'silent');
    const auth = new TokenAuth(store);
    await auth.add('admin', 'admin', TOKEN);
    app = await buildApi({ store, cache, auth, events: new EventRecorder(store, log), log, secrets: SecretBox.fromKey(randomBytes(32)), nodeLeaseTtl: 30,
      health: () => Promise.reject(new Error('not used here')) });
    race = [];
  });
  afterEach(async () => {
    await app.close();
    await cache.stop();
    await inner.close();
  });

  const call = async (method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) => {
    const res = await app.inject({ method, url, payload, headers: { authorization: `Bearer ${TOKEN}` } });
    return { status: res.statusCode, body: res.json() as { error?: { code?: string; field?: string; message: string } } };
  };
  const stored = async (name: string) => JSON.parse((await inner.get(K.service(name)))!.value) as Service;

  it('create with a taken name is 409 and leaves the existing service as it was', async () => {
    assert.equal((await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:1' })).status, 201);
    const before = await stored('web');
    const dup = await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:2', replicas: 7 });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error?.message, 'service web already exists');
    assert.deepEqual(await stored('web'), before);
  });

  it('an update that loses its compare-and-swap re-reads and keeps the concurrent change', async () => {
    await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:1', replicas: 3 });
    // A scale to 5 lands between the route's read and its commit.
    race = [(s) => ({ ...s, spec: { ...s.spec, replicas: 5 } })];
    const res = await call('PATCH', '/v1/services/web', { image: 'kiver/busybox:2' });
    assert.equal(res.status, 200);
    assert.equal(race.length, 0, 'the competing write landed');
    const s = await stored('web');
    assert.equal(s.spec.image, 'kiver/busybox:2', 'the update applied');
    assert.equal(s.spec.replicas, 5, 'on top of the concurrent scale, not over it');
    assert.equal(s.generation, 2, 'one rollout, not two');
  });

  it('a scale that loses its compare-and-swap re-reads and keeps the concurrent update', async () => {
    await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:1', replicas: 3 });
    race = [(s) => ({ ...s, spec: { ...s.spec, image: 'kiver/busybox:9' }, generation: s.generation + 1 })];
    assert.equal((await call('PUT', '/v1/services/web/scale', { replicas: 1 })).status, 200);
    const s = await stored('web');
    assert.deepEqual([s.spec.replicas, s.spec.image, s.generation], [1, 'kiver/busybox:9', 2]);
  });

  it('an update that keeps losing is 409 and writes none of its change', async () => {
    await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:1', replicas: 3 });
    race = Array.from({ length: 60 }, (_, i) => (s: Service) => ({ ...s, spec: { ...s.spec, replicas: i } }));
    const res = await call('PATCH', '/v1/services/web', { image: 'kiver/busybox:2' });
    assert.equal(res.status, 409);
    assert.equal(res.body.error?.message, 'service web is being changed by others; try again');
    const s = await stored('web');
    assert.equal(s.spec.image, 'kiver/busybox:1');
    assert.equal(s.spec.replicas, 49, 'the 50th competing write is the last one stored');
  });

  it('update and scale of a service being deleted are refused naming the field; delete is idempotent and keeps purge', async () => {
    await call('POST', '/v1/services', { name: 'web', image: 'kiver/busybox:1', replicas: 3 });
    assert.equal((await call('DELETE', '/v1/services/web?purge=true')).status, 202);
    const deleting = await stored('web');
    for (const [method, url, body] of [['PATCH', '/v1/services/web', { image: 'kiver/busybox:2' }], ['PUT', '/v1/services/web/scale', { replicas: 9 }]] as const) {
      const res = await call(method, url, body);
      assert.equal(res.status, 400, `${method} ${url}`);
      assert.equal(res.body.error?.field, 'name');
      assert.equal(res.body.error?.message, 'service web is being deleted');
    }
    assert.deepEqual(await stored('web'), deleting, 'nothing changed');
    assert.equal((await call('DELETE', '/v1/services/web')).status, 202);
    assert.deepEqual((await stored('web')).deleting, deleting.deleting, 'a second delete without purge does not cancel the purge');
  });
});

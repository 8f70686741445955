/**
 * Redis as a managed service on three test hosts: a primary and two replicas,
 * a generated password, AOF; kill -9 of the primary's container → the most
 * advanced replica is promoted, and every INCR confirmed by WAIT 1 survives;
 * the old primary comes back as a replica and catches up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { CatalogCluster, inSync } from './harness/catalog-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceRoles } from '../src/model/service-roles.js';
import { AckedWriter, redisWriter } from './harness/acked-writer.js';


describe('redis service: replication, write endpoint, failover', { timeout: 600_000 }, () => {
  let c: CatalogCluster;
  before(async () => {
    c = await CatalogCluster.start({ images: ['kiver/redis:latest'] });
  });
  after(async () => {
    await c?.cleanup();
  });

  const get = () => c.service('cache');
  const ready = (pred: (r: ServiceRoles) => boolean, what: string, ms = 120_000) => c.whenReady('cache', pred, what, ms);
  const open = (host: string, port: number, password: string) => {
    const r = new Redis({ host, port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
    r.on('error', () => {});
    return r;
  };

  it('a primary and two replicas; the password is required; AOF and min-replicas-to-write are on', async () => {
    await c.admin.post('/v1/services', { name: 'cache', type: 'redis', params: { appendfsync: 'always' } });
    const s = await ready((r) => inSync(2)(r), 'a primary and two replicas in sync', 180_000);
    assert.equal(new Set(s.replicas.map((r) => r.node)).size, 3);
    const { password } = await c.admin.get<{ password: string }>('/v1/services/cache/credentials');
    const ep = await c.endpoints('cache');
    const anon = open(ep.write.host, ep.write.port, '');
    await anon.connect();
    await assert.rejects(anon.set('k', 'v'), /NOAUTH/);
    anon.disconnect();
    const r = open(ep.write.host, ep.write.port, password);
    await r.connect();
    assert.equal(await r.set('k', 'v'), 'OK');
    assert.deepEqual(await r.config('GET', 'appendonly'), ['appendonly', 'yes']);
    assert.deepEqual(await r.config('GET', 'min-replicas-to-write'), ['min-replicas-to-write', '1']);
    r.disconnect();
  });

  it('kill -9 of the primary container: every INCR confirmed by WAIT 1 survives; the old primary rejoins', async () => {
    const { password } = await c.admin.get<{ password: string }>('/v1/services/cache/credentials');
    const ep = await c.endpoints('cache');
    const before = await get();
    const oldPrimary = before.roles!.primary!;
    const backend = redisWriter({ host: ep.write.host, port: ep.write.port, password });
    const writer = new AckedWriter(backend);
    await writer.start();
    await until('INCRs confirmed before the kill', async () => backend.values.length >= 100, 60_000, 50);
    const victim = before.replicas.find((r) => r.ordinal === oldPrimary)!;
    const killedAt = Date.now();
    await c.host(victim.node).docker.getContainer(victim.containerId!).kill({ signal: 'SIGKILL' });
    const atKill = backend.values.length;
    const after = await ready((r) => r.primary !== undefined && r.primary !== oldPrimary, 'a new primary', 60_000);
    await until('INCRs confirmed through the write endpoint after the kill', async () => backend.values.length >= atKill + 100, 60_000, 50);
    await writer.stop();
    const outage = writer.outageAfter(killedAt);
    assert.ok(outage !== undefined, 'writes failed after the kill and then succeeded again');
    const maxAcked = Math.max(...backend.values);
    process.stdout.write(`# redis failover: writable again ${(outage! / 1000).toFixed(1)} s after kill -9; ${backend.values.length} INCRs confirmed, ${writer.failed} failed\n`);

    const ep2 = await c.endpoints('cache');
    const at = (ord: number) => ep2.replicas.find((r) => r.ordinal === ord)!;
    const counterOn = async (ord: number) => {
      const r = open(at(ord).host, at(ord).port, password);
      await r.connect();
      try {
        return Number(await r.get('counter'));
      } finally {
        r.disconnect();
      }
    };
    const onNew = await counterOn(after.roles!.primary!);
    assert.ok(onNew >= maxAcked, `the new primary has counter ${onNew}, but ${maxAcked} was confirmed by WAIT 1`);

    await ready((r) => r.replicas.find((x) => x.ordinal === oldPrimary)?.role === 'replica', 'the old primary rejoins as a replica', 120_000);
    await until('the old primary caught up', async () => (await counterOn(oldPrimary)) === onNew, 60_000, 500);
  });
});

/**
 * MySQL (MariaDB 10.11) as a managed service on three real agents: a primary and
 * two replicas on distinct nodes, semi-sync GTID replication, the write endpoint,
 * and a failover on kill -9 of the primary's container that loses no
 * acknowledged row; the old primary comes back as a replica and catches up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { CatalogCluster, inSync } from './harness/catalog-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import type { ServiceRoles } from '../src/model/service-roles.js';
import { KiverError } from '../src/errors.js';
import { AckedWriter, mysqlWriter } from './harness/acked-writer.js';


describe('mysql service: replication, write endpoint, failover', { timeout: 600_000 }, () => {
  let c: CatalogCluster;
  before(async () => {
    c = await CatalogCluster.start({ images: ['kiver/mariadb:latest'] });
  });
  after(async () => {
    await c?.cleanup();
  });

  const get = () => c.service('db');
  const ready = (pred: (r: ServiceRoles) => boolean, what: string, ms = 120_000) => c.whenReady('db', pred, what, ms);

  it('bad input is a 400 naming the field, and stores nothing', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ name: 'bad', type: 'postgres' }, 'type'],
      [{ name: 'bad', type: 'mysql', params: { max_conections: 100 } }, 'params/max_conections'],
      [{ name: 'bad', type: 'mysql', params: { max_connections: 5 } }, 'params/max_connections'],
      [{ name: 'bad', type: 'mysql', params: { max_connections: 'lots' } }, 'params/max_connections'],
      [{ name: 'bad', type: 'mysql', replicas: 0 }, 'replicas'],
      [{ name: 'bad', type: 'redis', env: { REDIS_PASSWORD: 'hunter2' } }, 'env/REDIS_PASSWORD'],
      [{ name: 'bad', type: 'mysql', secretEnv: { X: 'y' } }, 'secretEnv'],
      [{ name: 'bad', type: 'mysql', image: 'kiver/busybox' }, 'image'],
      [{ name: 'bad' }, 'image'],
      [{ name: 'bad', image: 'kiver/busybox', params: { a: 1 } }, 'params'],
    ];
    for (const [body, field] of cases) {
      const err = await c.admin.post('/v1/services', body).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof KiverError && err.status === 400, `${JSON.stringify(body)} → ${String(err)}`);
      assert.equal(err.field, field, JSON.stringify(body));
      assert.match(err.message, new RegExp(field.split('/').pop()!.replace(/_/g, '_')));
    }
    const services = await c.admin.get<ServiceView[]>('/v1/services');
    assert.deepEqual(services.map((s) => s.name), []);
    assert.equal((await c.server.store.list('/kiver/service-credentials/')).kvs.length, 0);
  });

  it('one primary and two replicas on distinct nodes; roles, credentials and endpoints shown', async () => {
    await c.admin.post('/v1/services', { name: 'db', type: 'mysql', params: { max_connections: 200 }, memory: 400 * 2 ** 20 });
    const s = await ready((r) => inSync(2)(r), 'a primary and two replicas in sync', 240_000);
    assert.equal(new Set(s.replicas.map((r) => r.node)).size, 3, 'replicas on distinct nodes');
    const creds = await c.admin.get<{ user: string; password: string; database: string; all: Record<string, string> }>('/v1/services/db/credentials');
    assert.equal(creds.user, 'app');
    assert.ok(creds.password.length >= 24);
    // Sealed at rest: the password is nowhere in the store's plain text.
    const raw = await c.server.store.list('/kiver/');
    assert.ok(!raw.kvs.some((kv) => kv.value.includes(creds.password) || kv.value.includes(creds.all.admin)), 'no plaintext credential in the store');
    const ep = await c.endpoints('db');
    assert.equal(ep.primary?.ordinal, s.roles!.primary);
    // The write endpoint reaches the primary: max_connections is the parameter we set.
    const db = await mysql.createConnection({ host: ep.write.host, port: ep.write.port, user: 'app', password: creds.password, database: 'app' });
    const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT @@max_connections AS m, @@read_only AS ro, @@rpl_semi_sync_master_enabled AS ss');
    await db.end();
    assert.deepEqual({ ...rows[0] }, { m: 200, ro: 0, ss: 1 });
  });

  it('kill -9 of the primary container: a new primary within seconds, no acknowledged row lost, the old one rejoins', async () => {
    const creds = await c.admin.get<{ password: string }>('/v1/services/db/credentials');
    const ep = await c.endpoints('db');
    const before = await get();
    const oldPrimary = before.roles!.primary!;
    const writer = new AckedWriter(mysqlWriter({ host: ep.write.host, port: ep.write.port, user: 'app', password: creds.password, database: 'app' }));
    await writer.start();
    await until('rows acknowledged before the kill', async () => writer.acked.length >= 50, 60_000, 50);
    const victim = before.replicas.find((r) => r.ordinal === oldPrimary)!;
    const killedAt = Date.now();
    await c.host(victim.node).docker.getContainer(victim.containerId!).kill({ signal: 'SIGKILL' });
    const ackedAtKill = writer.acked.length;
    const after = await ready((r) => r.primary !== undefined && r.primary !== oldPrimary, 'a new primary', 60_000);
    await until('writes acknowledged through the write endpoint after the kill', async () => writer.acked.length >= ackedAtKill + 50, 60_000, 50);
    const outage = writer.outageAfter(killedAt);
    assert.ok(outage !== undefined, 'writes failed after the kill and then succeeded again');
    await writer.stop();
    const newPrimary = after.roles!.primary!;
    process.stdout.write(`# mysql failover: writable again ${(outage! / 1000).toFixed(1)} s after kill -9; ${writer.acked.length} rows acknowledged, ${writer.failed} writes failed\n`);

    const ep2 = await c.endpoints('db');
    const at = (ord: number) => ep2.replicas.find((r) => r.ordinal === ord)!;
    const ids = async (ord: number) => {
      const db = await mysql.createConnection({ host: at(ord).host, port: at(ord).port, user: 'app', password: creds.password, database: 'app' });
      try {
        const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT id FROM acked');
        return new Set(rows.map((r) => Number(r.id)));
      } finally {
        await db.end();
      }
    };
    const onNew = await ids(newPrimary);
    const lost = writer.acked.filter((id) => !onNew.has(id));
    assert.deepEqual(lost, [], `acknowledged rows missing on the new primary (of ${writer.acked.length})`);

    // The old primary comes back (the agent restarts its container) read-only, and rejoins as a replica.
    await ready((r) => r.replicas.find((x) => x.ordinal === oldPrimary)?.role === 'replica', 'the old primary rejoins as a replica', 120_000);
    await until('the old primary caught up', async () => {
      const got = await ids(oldPrimary);
      return writer.acked.every((id) => got.has(id)) && got.size === onNew.size;
    }, 60_000, 500);
    const s = await get();
    assert.equal(s.roles!.replicas.filter((r) => r.role === 'replica').length, 2);
  });

  it('switchover under load: a new primary, no acknowledged row lost, the old primary follows it', async () => {
    const creds = await c.admin.get<{ password: string }>('/v1/services/db/credentials');
    const ep = await c.endpoints('db');
    const before = await get();
    const oldPrimary = before.roles!.primary!;
    const bad = await c.admin.post('/v1/services/db/switchover', { to: oldPrimary }).then(() => undefined, (e: unknown) => e);
    assert.ok(bad instanceof KiverError && bad.status === 400 && bad.field === 'to', String(bad));
    const writer = new AckedWriter(mysqlWriter({ host: ep.write.host, port: ep.write.port, user: 'app', password: creds.password, database: 'app' }, 'acked_switchover'));
    await writer.start();
    await until('rows acknowledged before the switchover', async () => writer.acked.length >= 30, 60_000, 50);
    const t0 = Date.now();
    await c.admin.post('/v1/services/db/switchover', {});
    const after = await ready((r) => r.primary !== undefined && r.primary !== oldPrimary, 'the switchover', 60_000);
    const atSwitch = writer.acked.length;
    await until('writes acknowledged after the switchover', async () => writer.acked.length >= atSwitch + 30, 60_000, 50);
    await writer.stop();
    const pause = writer.outageAfter(t0);
    const span = writer.failTimes.length ? `${writer.failTimes[0] - t0}..${writer.failTimes[writer.failTimes.length - 1] - t0} ms` : '-';
    process.stdout.write(`# mysql switchover: ${writer.failed} failed writes (${span} after the request: ${JSON.stringify([...writer.errors])}), pause ${pause === undefined ? 'none' : `${(pause / 1000).toFixed(1)} s`}\n`);
    const ep2 = await c.endpoints('db');
    const p = ep2.replicas.find((r) => r.ordinal === after.roles!.primary)!;
    const db = await mysql.createConnection({ host: p.host, port: p.port, user: 'app', password: creds.password, database: 'app' });
    const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT id FROM acked_switchover');
    await db.end();
    const have = new Set(rows.map((r) => Number(r.id)));
    assert.deepEqual(writer.acked.filter((id) => !have.has(id)), []);
    // Errors only during the pause: none before the request, none after writes resumed.
    assert.ok(writer.failTimes.every((x) => x >= t0 && x <= t0 + (pause ?? 0)), `failures outside the pause: ${span}`);
    await ready((r) => r.replicas.find((x) => x.ordinal === oldPrimary)?.role === 'replica', 'the old primary follows the new one', 60_000);
  });

  it('a replica whose history diverged is rebuilt from the primary and follows it again', async () => {
    const creds = await c.admin.get<{ password: string; all: Record<string, string> }>('/v1/services/db/credentials');
    const s = await get();
    const victim = s.roles!.replicas.find((r) => r.role === 'replica')!.ordinal;
    const ep = await c.endpoints('db');
    const at = (ord: number) => ep.replicas.find((r) => r.ordinal === ord)!;
    const conn = (ord: number, user = 'app', password = creds.password) =>
      mysql.createConnection({ host: at(ord).host, port: at(ord).port, user, password, database: 'app' });
    // A transaction only this replica has (root is not bound by read_only), then its link restarts: IO error 1236.
    const root = await conn(victim, 'root', creds.all.admin);
    await root.query('INSERT INTO acked_switchover (id) VALUES (-7)');
    await root.query('STOP SLAVE');
    await root.query('START SLAVE');
    await root.end();
    await until('the rebuild event', async () => {
      const evs = await c.admin.get<{ reason: string }[]>('/v1/events?object=service/db');
      return evs.some((e) => e.reason === 'Rebuilt');
    }, 120_000, 500);
    await ready(inSync(2), 'the rebuilt replica in sync', 60_000);
    const ids = async (ord: number) => {
      const db = await conn(ord);
      try {
        const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT id FROM acked_switchover ORDER BY id');
        return rows.map((r) => Number(r.id));
      } finally {
        await db.end();
      }
    };
    assert.deepEqual(await ids(victim), await ids((await get()).roles!.primary!));
  });
});

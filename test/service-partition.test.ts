/**
 * MySQL with its primary's test host partitioned (its link to the others cut, the host
 * still running): a replica is promoted and takes writes through the write endpoint,
 * no acknowledged row is lost, and the cut-off old primary acknowledges no write
 * meanwhile — semi-sync makes its commits wait for a replica that no longer follows it —
 * so at no instant do two primaries accept writes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { CatalogCluster, inSync } from './harness/catalog-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceRoles } from '../src/model/service-roles.js';
import { AckedWriter, mysqlWriter } from './harness/acked-writer.js';
import { demux } from './harness/docker.js';

describe('mysql service: primary host partitioned', { timeout: 600_000 }, () => {
  let c: CatalogCluster;
  before(async () => {
    c = await CatalogCluster.start({ images: ['kiver/mariadb:latest'], graceSeconds: 20 });
  });
  after(async () => {
    await c?.cleanup();
  });

  it('a new primary takes writes; the cut-off old primary acknowledges none; no acknowledged row lost', async () => {
    await c.admin.post('/v1/services', { name: 'pdb', type: 'mysql' });
    const before = await c.whenReady('pdb', inSync(2), 'a primary and two replicas in sync', 240_000);
    const creds = await c.admin.get<{ password: string }>('/v1/services/pdb/credentials');
    const ep = await c.endpoints('pdb');
    const old = before.roles!.primary!;
    const victim = before.replicas.find((r) => r.ordinal === old)!;
    const host = c.host(victim.node);
    const writer = new AckedWriter(mysqlWriter({ host: ep.write.host, port: ep.write.port, user: 'app', password: creds.password, database: 'app' }));
    await writer.start();
    await until('rows acknowledged before the partition', async () => writer.acked.length >= 30, 60_000, 50);

    await host.disconnect();
    const cutAt = Date.now();
    // Inside the partition a client writes straight to the old primary: the commit must not return.
    const exec = await host.docker.getContainer(victim.containerId!).exec({
      Cmd: ['timeout', '8', 'mariadb', '-uapp', `-p${creds.password}`, '-h127.0.0.1', 'app', '-e', 'INSERT INTO acked (id) VALUES (-1); SELECT "committed"'],
      AttachStdout: true, AttachStderr: true,
    });
    const stream = await exec.start({});
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => stream.on('end', r));
    const out = demux(Buffer.concat(chunks));
    const { ExitCode } = await exec.inspect();
    assert.notEqual(ExitCode, 0, `a write on the cut-off old primary returned: ${out.stdout} ${out.stderr}`);
    assert.ok(!out.stdout.includes('committed'), out.stdout);

    const after = await c.whenReady('pdb', (r) => r.primary !== undefined && r.primary !== old, 'a new primary', 60_000);
    const n = writer.acked.length;
    await until('rows acknowledged through the write endpoint after the partition', async () => writer.acked.length >= n + 30, 60_000, 50);
    await writer.stop();
    process.stdout.write(`# mysql partition: writable again ${((writer.outageAfter(cutAt) ?? 0) / 1000).toFixed(1)} s after the cut; ${writer.acked.length} rows acknowledged\n`);
    const p = (await c.endpoints('pdb')).replicas.find((r) => r.ordinal === after.roles!.primary)!;
    const db = await mysql.createConnection({ host: p.host, port: p.port, user: 'app', password: creds.password, database: 'app' });
    const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT id FROM acked');
    await db.end();
    const have = new Set(rows.map((r) => Number(r.id)));
    assert.deepEqual(writer.acked.filter((id) => !have.has(id)), []);
    assert.ok(!have.has(-1), 'the row written on the cut-off old primary is not on the new one');
    // Healed: the old primary is fenced and follows the new one. (Its unacknowledged commit kept
    // the fence waiting forever once, behind a semi-sync wait of days: this caught it.)
    await host.connect();
    const rejoined = (r: ServiceRoles) => r.primary === after.roles!.primary && r.replicas.find((x) => x.ordinal === old)?.role === 'replica' && inSync(2)(r);
    await c.whenReady('pdb', rejoined, 'the old primary back as a replica, in sync', 120_000);
  });
});

/**
 * Scheduled backups under a test clock with a server failover in between: exactly one
 * backup per cron slot (a slot missed while the leader changed runs once, older missed
 * slots never), retention deletes only after a newer backup completed and verified, and
 * a failing backup never removes a good one. Two `kiver server`s in this process on a
 * real etcd; one node whose replicas a FakeAgent reports running, and the real backup
 * worker of that node streaming its data directory to the shared Ceph.
 * Also: bad policy input is a 400 naming the field and stores nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { BackupWorker } from '../src/backup/worker.js';
import { s3Client } from '../src/backup/s3-target.js';
import { InputError } from '../src/errors.js';
import type { Backup, BackupPolicy } from '../src/model/backup.js';
import { FakeAgent } from './harness/fake-agent.js';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { ensureSharedCeph, type CephState } from './harness/ceph.js';
import { until } from './harness/kiver.js';

const BUCKET = `ks-${randomBytes(4).toString('hex')}`;
const log = createLogger('test', 'silent');

describe('scheduled backups across a server failover', () => {
  let etcd: EtcdCluster;
  let ceph: CephState;
  let dir: string;
  const servers: KiverServer[] = [];
  let admin: ApiClient;
  let agent: FakeAgent;
  let worker: BackupWorker;
  /** The test clock every server's schedules run on. */
  let clock = new Date('2026-12-01T00:00:30Z');

  const start = async () => {
    const store = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    const s = await KiverServer.start({
      // One data dir for both: tokens and the secret key are the cluster's (on real hosts, copied).
      dataDir: join(dir, 'state'), store, listen: '127.0.0.1:0', log, nodeLeaseTtl: 60,
      secretKeyFile: join(dir, 'cluster.key'), backups: { now: () => clock, tickMs: 100 },
    });
    servers.push(s);
    return s;
  };
  const leader = () => until('a leader', async () => servers.find((s) => s.election.isLeader), 20_000);
  const slotIds = async () => (await admin.get<Backup[]>('/v1/backups?service=cron')).filter((b) => b.trigger === 'schedule').map((b) => b.slot).sort();
  const ended = (slot: string) => until(`backup of slot ${slot} ended`, async () => {
    const b = (await admin.get<Backup[]>('/v1/backups?service=cron')).find((x) => x.slot === slot);
    return b && (b.state === 'completed' || b.state === 'failed') ? b : false;
  }, 60_000, 100);
  const objects = async () => ((await s3Client({ url: ceph.s3Url, bucket: BUCKET, accessKey: ceph.accessKey, secretKey: ceph.secretKey })
    .send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'kiver/cron/' }))).Contents ?? []).map((o) => o.Key!).sort();

  before(async () => {
    [etcd, ceph] = await Promise.all([EtcdCluster.start({ members: 1 }), ensureSharedCeph()]);
    dir = await mkdtemp(join(tmpdir(), 'kiver-bsched-'));
    await start();
    await leader();
    await start();
    const urls = servers.map((s) => s.url);
    admin = new ApiClient({ servers: urls, token: servers[0].tokens.admin });
    agent = new FakeAgent(urls, servers[0].tokens.join, 'n1');
    await agent.start();
    await mkdir(join(dir, 'data', 'cron', '0'), { recursive: true });
    await writeFile(join(dir, 'data', 'cron', '0', 'state.db'), randomBytes(100_000));
    worker = new BackupWorker({ client: () => new ApiClient({ servers: urls, token: agent.credential! }), node: 'n1', dataRoot: join(dir, 'data'), log, pollMs: 200 });
    worker.start();
    await admin.post('/v1/backup-targets', { name: 'ceph', s3: { url: ceph.s3Url, bucket: BUCKET, accessKey: ceph.accessKey, secretKey: ceph.secretKey } });
    await admin.post('/v1/backup-targets', { name: 'nowhere', s3: { url: 'http://127.0.0.1:1', bucket: BUCKET, accessKey: 'a', secretKey: 'b' } });
  });
  after(async () => {
    await worker?.stop();
    agent?.stop();
    for (const s of servers) await s.close().catch(() => {});
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('bad policy input is a 400 naming the field; nothing is stored', async () => {
    await admin.post('/v1/services', { name: 'plain', image: 'kiver/busybox', replicas: 0 });
    const cases: [Record<string, unknown>, string][] = [
      [{ schedule: '61 * * * *', target: 'ceph' }, 'schedule'],
      [{ schedule: '0 2 * * *', tz: 'Mars/Olympus', target: 'ceph' }, 'tz'],
      [{ schedule: '0 2 * * *', target: 'nosuch' }, 'target'],
      [{ schedule: '0 2 * * *', target: 'ceph', keep: 0 }, 'keep'],
    ];
    for (const [body, field] of cases) {
      await assert.rejects(admin.put('/v1/backup-policies/plain', body), (e: unknown) => e instanceof InputError && e.field === field, field);
      await assert.rejects(admin.post('/v1/services', { name: 'withpolicy', image: 'kiver/busybox', replicas: 0, backup: body }),
        (e: unknown) => e instanceof InputError && e.field === `backup/${field}`, `service create: backup/${field}`);
    }
    await assert.rejects(admin.get('/v1/backup-policies/plain'), /no backup policy/);
    await assert.rejects(admin.get('/v1/services/withpolicy'), /not found/, 'a service with a bad policy is not created');
  });

  it('one backup per slot through a failover; a missed slot runs once; retention after a verified backup only', async () => {
    await admin.post('/v1/services', {
      name: 'cron', image: 'kiver/busybox', replicas: 1, backup: { schedule: '* * * * *', target: 'ceph', keep: 2 },
    });
    await until('cron/0 running on n1', async () => (await admin.get<{ status: { running: number } }>('/v1/services/cron')).status.running === 1);
    assert.deepEqual(await slotIds(), [], 'nothing is due before the first slot');

    clock = new Date('2026-12-01T00:01:05Z');
    const first = await ended('2026-12-01T00:01:00.000Z');
    assert.equal(first.state, 'completed', first.error);
    clock = new Date('2026-12-01T00:02:05Z');
    assert.equal((await ended('2026-12-01T00:02:00.000Z')).state, 'completed');

    // The leader goes; the clock moves three slots on while the other server takes over.
    const old = await leader();
    clock = new Date('2026-12-01T00:05:05Z');
    await old.close();
    servers.splice(servers.indexOf(old), 1);
    const next = await leader();
    assert.notEqual(next, old);
    assert.equal((await ended('2026-12-01T00:05:00.000Z')).state, 'completed');
    // A few more ticks of the new leader at the same time: nothing more is created.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await slotIds(), ['2026-12-01T00:01:00.000Z', '2026-12-01T00:02:00.000Z', '2026-12-01T00:05:00.000Z'].slice(1),
      'slots 00:01 (removed by retention, keep 2), 00:02 and 00:05 ran once each; 00:03 and 00:04 never');
    const all = await admin.get<Backup[]>('/v1/backups?service=cron');
    const byId = new Set(all.map((b) => b.id));
    assert.equal(byId.size, all.length);
    assert.deepEqual(await objects(), all.flatMap((b) => [b.manifestKey, b.objectKey]).sort(), 'the expired backup\'s objects are gone, the kept ones are there');

    // A failing backup never costs a good one, even with keep 1.
    await admin.put('/v1/backup-policies/cron', { schedule: '* * * * *', target: 'nowhere', keep: 1 });
    clock = new Date('2026-12-01T00:06:05Z');
    const failed = await ended('2026-12-01T00:06:00.000Z');
    assert.equal(failed.state, 'failed');
    assert.match(failed.error!, /cannot reach the target/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual((await slotIds()), ['2026-12-01T00:02:00.000Z', '2026-12-01T00:05:00.000Z', '2026-12-01T00:06:00.000Z']);
    assert.equal((await admin.get<BackupPolicy>('/v1/backup-policies/cron')).lastSlot, '2026-12-01T00:06:00.000Z');
  });
});

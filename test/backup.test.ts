/**
 * Backups against a real single-node Ceph (test/harness/ceph.ts) and a real `kiver up`
 * (agent, Docker, busybox replicas): targets (keys sealed, check says which step failed,
 * bad input stores nothing), a streamed backup of a replica's data verified against the
 * bytes on RGW, a restore into a new service, and an RGW killed mid-upload.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { KiverProcess, until } from './harness/kiver.js';
import { ensureSharedCeph, startRgw, type CephState } from './harness/ceph.js';
import { s3Client } from '../src/backup/s3-target.js';
import type { Backup, BackupManifest, Restore, TargetCheck, TargetView } from '../src/model/backup.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';
import { InputError } from '../src/errors.js';

const BUCKET = `kb-${randomBytes(4).toString('hex')}`;

describe('backups to Ceph', () => {
  let ceph: CephState;
  let k: KiverProcess;
  let spareRgw: Awaited<ReturnType<typeof startRgw>> | undefined;
  const s3 = () => s3Client({ url: ceph.s3Url, bucket: BUCKET, accessKey: ceph.accessKey, secretKey: ceph.secretKey });
  const objects = async (prefix: string) => ((await s3().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!);
  const sha256Of = async (key: string) => createHash('sha256').update(Buffer.from(await (await s3().send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray())).digest('hex');

  before(async () => {
    ceph = await ensureSharedCeph();
    k = await KiverProcess.create();
    await k.start();
  });
  after(async () => {
    await spareRgw?.kill();
    await k?.cleanup();
  });

  const backupDone = (id: string) => until(`backup ${id} ended`, async () => {
    const b = await k.client.get<Backup>(`/v1/backups/${id}`);
    return b.state === 'completed' || b.state === 'failed' ? b : false;
  }, 120_000, 250);

  const restoreDone = (to: string) => until(`restore into ${to} ended`, async () => {
    const r = await k.client.get<Restore>(`/v1/restores/${to}`);
    return r.state === 'completed' || r.state === 'failed' ? r : false;
  }, 120_000, 250);

  it('target add seals the keys, never shows them, and check writes, reads and deletes a probe', async () => {
    const secret = `SeCrEt${randomBytes(8).toString('hex')}`;
    const add = await k.cli('backup', 'target', 'add', 'ceph', '--s3', ceph.s3Url, '--bucket', BUCKET, '--access-key', ceph.accessKey, '--secret-key', ceph.secretKey);
    assert.equal(add.code, 0, add.stderr);
    assert.ok(!add.stdout.includes(ceph.secretKey) && !add.stderr.includes(ceph.secretKey), 'the CLI does not echo the secret');
    const view = await k.client.get<TargetView>('/v1/backup-targets/ceph');
    assert.deepEqual(view.s3, { url: ceph.s3Url, bucket: BUCKET, accessKey: '(set)', secretKey: '(set)' });
    const check = await k.cli('backup', 'target', 'check', 'ceph');
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /ok {3}write probe object[\s\S]*ok {3}read probe object back[\s\S]*ok {3}delete probe object/);
    assert.deepEqual(await objects('kiver/.probe/'), [], 'the probe object is gone');

    // A wrong secret: check fails at the first step and names the cause; the secret is in no store row or DB file.
    await k.client.post('/v1/backup-targets', { name: 'wrongkey', s3: { url: ceph.s3Url, bucket: BUCKET, accessKey: ceph.accessKey, secretKey: secret } });
    const bad = await k.client.post<TargetCheck>('/v1/backup-targets/wrongkey/check', {});
    assert.equal(bad.ok, false);
    assert.match(bad.steps.at(-1)!.error!, /refused the credentials|secret key is wrong|403/);
    const cli = await k.cli('backup', 'target', 'check', 'wrongkey');
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /failed its check at: bucket/);
    const dbFiles = (await readdir(join(k.dir, 'state'))).filter((f) => f.startsWith('kiver.db'));
    for (const f of dbFiles) {
      const bytes = (await readFile(join(k.dir, 'state', f))).toString('latin1');
      assert.ok(!bytes.includes(secret) && !bytes.includes(ceph.secretKey), `no plaintext key in ${f}`);
    }
    assert.ok(!k.output.includes(secret) && !k.output.includes(ceph.secretKey), 'no key in the server log');
    const unreachable = await k.client.post<TargetView>('/v1/backup-targets', { name: 'nowhere', s3: { url: 'http://127.0.0.1:1', bucket: BUCKET, accessKey: 'a', secretKey: 'b' } });
    const r = await k.client.post<TargetCheck>(`/v1/backup-targets/${unreachable.name}/check`, {});
    assert.match(r.steps[0].error!, /cannot reach the target \(ECONNREFUSED\)/);
  });

  it('bad input is a 400 naming the field and stores nothing', async () => {
    const before = (await k.client.get<TargetView[]>('/v1/backup-targets')).length;
    const cases: [unknown, string][] = [
      [{ name: 'x1', s3: { url: 'ftp://h', bucket: BUCKET, accessKey: 'a', secretKey: 'b' } }, 's3/url'],
      [{ name: 'x2', s3: { url: ceph.s3Url, bucket: 'A_B', accessKey: 'a', secretKey: 'b' } }, 's3/bucket'],
      [{ name: 'x3', s3: { url: ceph.s3Url, bucket: BUCKET, accessKey: 'a' } }, 's3/secretKey'],
      [{ name: 'x4' }, 's3'],
      [{ name: 'x5', rbd: { pool: '../etc' } }, 'rbd/pool'],
      [{ name: 'Bad Name', rbd: { pool: 'rbd' } }, 'name'],
    ];
    for (const [body, field] of cases) {
      await assert.rejects(k.client.post('/v1/backup-targets', body), (e: unknown) => e instanceof InputError && e.field === field, `field ${field}`);
    }
    assert.equal((await k.client.get<TargetView[]>('/v1/backup-targets')).length, before);
  });

  it('a replica streams to RGW: SHA-256 and position in a manifest next to the data; restore goes into a new service', async () => {
    const create = await k.cli('service', 'create', 'files', '--image', 'kiver/busybox', '--replicas', '1', '--memory', '64m',
      '--cmd', 'mkdir -p /data/sub && echo hello > /data/a.txt && echo world > /data/sub/b.txt && exec sleep 100000', '--wait', '--timeout', '90');
    assert.equal(create.code, 0, create.stderr);
    await writeFile(join(k.dataRoot, 'files', '0', 'blob.bin'), randomBytes(3 * 1024 * 1024 + 17));
    await until('files written', async () => (await readFile(join(k.dataRoot, 'files', '0', 'sub', 'b.txt'), 'utf8').catch(() => '')) === 'world\n');
    const res = await k.cli('-o', 'json', 'backup', 'create', 'files', '--target', 'ceph', '--wait', '--timeout', '120');
    assert.equal(res.code, 0, res.stderr);
    const b = JSON.parse(res.stdout) as Backup;
    assert.equal(b.state, 'completed');
    assert.equal(b.verified, true);
    assert.equal(b.position?.kind, 'app-files');
    assert.equal(b.position?.files, 4, 'a.txt, sub/, sub/b.txt, blob.bin');
    assert.ok(b.bytes > 3 * 1024 * 1024);
    assert.ok((b.durationMs ?? -1) >= 0);
    assert.deepEqual((await objects(`kiver/files/${b.id}/`)).sort(), [b.objectKey, b.manifestKey].sort());
    assert.equal(await sha256Of(b.objectKey), b.sha256, 'the stored object has the recorded SHA-256');
    const m = JSON.parse(await (await s3().send(new GetObjectCommand({ Bucket: BUCKET, Key: b.manifestKey }))).Body!.transformToString()) as BackupManifest;
    assert.deepEqual({ sha: m.sha256, size: m.size, pos: m.position }, { sha: b.sha256, size: b.bytes, pos: b.position });
    const ls = await k.cli('backup', 'ls', 'files');
    assert.match(ls.stdout, new RegExp(`${b.id.replace('.', '\\.')}\\s+completed \\(verified\\)`));

    // Restore: never over a live service; into a new one, data verified, then it runs.
    await assert.rejects(k.client.post('/v1/restores', { backup: b.id, to: 'files' }), /exists already/);
    const rr = await k.cli('backup', 'restore', b.id, '--to', 'files2', '--wait', '--timeout', '120');
    assert.equal(rr.code, 0, rr.stderr);
    assert.match(rr.stdout, /checksum verified/);
    const restored = join(k.dataRoot, 'files2', '0');
    assert.equal(await readFile(join(restored, 'sub', 'b.txt'), 'utf8'), 'world\n');
    assert.deepEqual(await readFile(join(restored, 'blob.bin')), await readFile(join(k.dataRoot, 'files', '0', 'blob.bin')));
    await until('files2 running', async () => (await k.client.get<ServiceView>('/v1/services/files2')).status.running === 1, 90_000);
  });

  it('a restore whose bytes do not match the checksum restores nothing', async () => {
    const [b] = await k.client.get<Backup[]>('/v1/backups?service=files');
    // Tamper with the stored object (same size, one byte flipped) through RGW.
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const body = Buffer.from(await (await s3().send(new GetObjectCommand({ Bucket: BUCKET, Key: b.objectKey }))).Body!.transformToByteArray());
    const original = Buffer.from(body);
    body[Math.floor(body.length / 2)] ^= 0xff; // inside blob.bin's content: the archive still unpacks
    await s3().send(new PutObjectCommand({ Bucket: BUCKET, Key: b.objectKey, Body: body }));
    try {
      await k.client.post('/v1/restores', { backup: b.id, to: 'files3' });
      const r = await restoreDone('files3');
      assert.equal(r.state, 'failed');
      assert.match(r.error!, /checksum mismatch/);
      await assert.rejects(readdir(join(k.dataRoot, 'files3', '0')), /ENOENT/, 'nothing restored');
      assert.equal((await k.client.get<ServiceView>('/v1/services/files3')).spec.replicas, 0, 'the new service never started');
    } finally {
      await s3().send(new PutObjectCommand({ Bucket: BUCKET, Key: b.objectKey, Body: original }));
    }
  });

  it('the RBD kind: rbd import - streams the backup into an image, the restore reads it back verified', async () => {
    const add = await k.cli('backup', 'target', 'add', 'rados', '--rbd', ceph.rbdPool, '--ceph-conf', ceph.conf);
    assert.equal(add.code, 0, add.stderr);
    assert.equal((await k.client.post<TargetCheck>('/v1/backup-targets/rados/check', {})).ok, true);
    const b = await backupDone((await k.client.post<Backup>('/v1/backups', { service: 'files', target: 'rados' })).id);
    assert.equal(b.state, 'completed', b.error);
    assert.equal(b.verified, true);
    await k.client.post('/v1/restores', { backup: b.id, to: 'files5' });
    const r = await restoreDone('files5');
    assert.equal(r.state, 'completed', r.error);
    assert.deepEqual(await readFile(join(k.dataRoot, 'files5', '0', 'blob.bin')), await readFile(join(k.dataRoot, 'files', '0', 'blob.bin')));
  });

  it('RGW killed mid-upload: the backup fails with an event, no partial object, the previous backup intact and restorable', async () => {
    spareRgw = await startRgw(ceph, 'kill');
    await k.client.post('/v1/backup-targets', { name: 'spare', s3: { url: spareRgw.url, bucket: BUCKET, accessKey: ceph.accessKey, secretKey: ceph.secretKey } });
    const good = await backupDone((await k.client.post<Backup>('/v1/backups', { service: 'files', target: 'spare' })).id);
    assert.equal(good.state, 'completed');
    // Enough data that the upload is still running when the gateway dies.
    await mkdir(join(k.dataRoot, 'files', '0', 'big'), { recursive: true });
    for (let i = 0; i < 12; i++) await writeFile(join(k.dataRoot, 'files', '0', 'big', `f${i}`), randomBytes(16 * 1024 * 1024));
    const doomed = await k.client.post<Backup>('/v1/backups', { service: 'files', target: 'spare' });
    await until('the upload is under way', async () => (await k.client.get<Backup>(`/v1/backups/${doomed.id}`)).bytes > 0, 60_000, 20);
    await spareRgw.kill();
    const failed = await backupDone(doomed.id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error!, /cannot reach the target|ECONNRE|socket|EPIPE/i);
    const events = await k.client.get<KiverEvent[]>('/v1/events?object=service/files');
    assert.ok(events.some((e) => e.reason === 'BackupFailed' && e.message.includes(doomed.id)), 'a BackupFailed event names the backup');
    assert.deepEqual(await objects(`kiver/files/${doomed.id}/`), [], 'no object of the failed backup is visible');
    assert.equal(await sha256Of(good.objectKey), good.sha256, 'the previous backup is intact');
    const metrics = await (await fetch(`${k.url}/metrics`)).text();
    assert.match(metrics, /kiver_backup_failures_total\{service="files"\} [1-9]/);
    assert.match(metrics, /kiver_backup_last_success_timestamp_seconds\{service="files"\} \d/);
    // The gateway back (same cluster, same bucket): the good backup restores.
    spareRgw = await startRgw(ceph, 'kill', Number(new URL(spareRgw.url).port));
    await k.client.post('/v1/restores', { backup: good.id, to: 'files4' });
    const r = await restoreDone('files4');
    assert.equal(r.state, 'completed', r.error);
    assert.equal(await readFile(join(k.dataRoot, 'files4', '0', 'a.txt'), 'utf8'), 'hello\n');
  });
});

/**
 * `npm run bench:backup [-- --mib N --rounds R]` — backup and restore throughput to Ceph RGW.
 *
 * On the shared single-node Ceph of the tests (test/harness/ceph.ts; started if needed),
 * with a replica data directory of N MiB (default 256) of random data in 16 files:
 *   - Kiver backup: the agent's code path (tar stream of the directory → SHA-256 → multipart
 *     upload → read back and compare → manifest), without the API round-trips;
 *   - Kiver restore: manifest → download → SHA-256 → tar extract into staging → rename;
 *   - baseline: a plain AWS SDK upload (lib-storage Upload, SDK defaults) of the same
 *     files' bytes, streamed, in the same run.
 * Prints MB/s of each (best of R rounds, default 2) and the backup/baseline ratio. The
 * backup reads every byte back to verify it, so it moves the data twice.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Upload } from '@aws-sdk/lib-storage';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ensureSharedCeph } from '../test/harness/ceph.js';
import { S3Target, s3Client } from '../src/backup/s3-target.js';
import { AppFilesRestore, AppFilesSource } from '../src/backup/app-files.js';
import { runBackup, runRestore } from '../src/backup/stream.js';
import { backupKeys } from '../src/backup/target.js';
import type { BackupJob } from '../src/model/backup.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MIB = arg('mib', 256);
const ROUNDS = arg('rounds', 2);
const FILES = 16;

async function main(): Promise<void> {
  const ceph = await ensureSharedCeph();
  const spec = { url: ceph.s3Url, bucket: `bench-${randomBytes(3).toString('hex')}`, accessKey: ceph.accessKey, secretKey: ceph.secretKey };
  const dir = await mkdtemp(join(tmpdir(), 'kiver-bench-backup-'));
  const data = join(dir, 'data', 'bench', '0');
  await mkdir(data, { recursive: true });
  const per = Math.ceil((MIB * 1024 * 1024) / FILES);
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    files.push(join(data, `f${i}`));
    await writeFile(files[i], randomBytes(per));
  }
  const bytes = per * FILES;
  const target = new S3Target(spec);
  await target.prepare();
  const client = s3Client(spec);
  const mbs = (ms: number) => bytes / 1e6 / (ms / 1000);
  const best = { backup: 0, restore: 0, baseline: 0 };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Baseline: the same bytes, one stream, a plain SDK multipart upload.
      let t0 = performance.now();
      const body = new PassThrough();
      void (async () => {
        for (const f of files) for await (const c of createReadStream(f)) if (!body.write(c)) await new Promise((r) => body.once('drain', r));
        body.end();
      })();
      await new Upload({ client, params: { Bucket: spec.bucket, Key: 'baseline', Body: body } }).done();
      best.baseline = Math.max(best.baseline, mbs(performance.now() - t0));
      await client.send(new DeleteObjectCommand({ Bucket: spec.bucket, Key: 'baseline' }));

      const id = `bench.r${round}`;
      const job: BackupJob = { kind: 'backup', id, service: 'bench', ordinal: 0, image: '', ...backupKeys('bench', id), target: { name: 'bench', s3: spec } };
      const place = { dataRoot: join(dir, 'data'), service: 'bench', ordinal: 0, image: '' };
      t0 = performance.now();
      const r = await runBackup(job, 'bench-node', new AppFilesSource(place), target, () => {}, new AbortController().signal);
      best.backup = Math.max(best.backup, mbs(performance.now() - t0));

      const into = { ...place, service: 'restored', ordinal: round };
      t0 = performance.now();
      await runRestore({ ...job, kind: 'restore', sha256: r.sha256 }, new AppFilesRestore(into), target, () => {});
      best.restore = Math.max(best.restore, mbs(performance.now() - t0));
      await rm(join(dir, 'data', 'restored'), { recursive: true, force: true });
      await target.remove(job.objectKey);
      await target.remove(job.manifestKey);
    }
  } finally {
    target.close();
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`backup bench: ${MIB} MiB in ${FILES} files to Ceph RGW (${ceph.s3Url}, memstore OSD), best of ${ROUNDS}`);
  console.log(`  baseline (plain AWS SDK upload of the same bytes): ${best.baseline.toFixed(1)} MB/s`);
  console.log(`  kiver backup (tar → SHA-256 → multipart → read-back verify → manifest): ${best.backup.toFixed(1)} MB/s`);
  console.log(`  kiver restore (download → SHA-256 → tar extract → rename):            ${best.restore.toFixed(1)} MB/s`);
  console.log(`  ratio backup/baseline: ${(best.backup / best.baseline).toFixed(2)}  restore/baseline: ${(best.restore / best.baseline).toFixed(2)}`);
}

await main();

/**
 * One backup or restore, end to end, on the node that holds the replica:
 * source stream → SHA-256 and byte count → multipart upload (no local copy) →
 * read the object back and compare its SHA-256 → manifest next to it. The manifest is
 * written last: an object without one is not a backup, and a failure removes the data
 * object. A restore reads the manifest, streams the data into the consumer's staging
 * while hashing, and commits only when the checksum matches.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { BackupJob, BackupManifest, BackupPosition } from '../model/backup.js';
import type { BackupTarget } from './target.js';
import type { BackupSource, RestoreConsumer } from './source.js';

export interface StreamResult {
  bytes: number;
  sha256: string;
  position: BackupPosition;
  verified: boolean;
}

/** A pass-through that hashes and counts; `onBytes` is called at most every `everyMs`. */
export function hashing(onBytes?: (n: number) => void, everyMs = 1000): Transform & { digest(): { bytes: number; sha256: string } } {
  const h = createHash('sha256');
  let bytes = 0;
  let last = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      bytes += chunk.length;
      const now = performance.now();
      if (onBytes && now - last >= everyMs) {
        last = now;
        onBytes(bytes);
      }
      cb(null, chunk);
    },
  });
  let sha: string | undefined;
  return Object.assign(t, { digest: () => ({ bytes, sha256: (sha ??= h.digest('hex')) }) });
}

/** Pipes a into b, passing a's error on to b (the consumer sees the failure, not a short stream). */
function through<T extends Transform>(a: Readable, b: T): T {
  a.on('error', (err) => b.destroy(err));
  return a.pipe(b);
}

async function sha256Of(stream: Readable): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { bytes, sha256: h.digest('hex') };
}

export async function runBackup(job: BackupJob, node: string, source: BackupSource, target: BackupTarget,
  onProgress: (bytes: number) => void, signal: AbortSignal): Promise<StreamResult> {
  const startedAt = new Date().toISOString();
  let uploaded = false;
  try {
    await target.prepare(); // the bucket exists (created when missing and allowed)
    const { stream, position } = await source.open(signal);
    const hasher = through(stream, hashing(onProgress));
    uploaded = true; // from here a failed or half-finished upload may need removing
    await target.upload(job.objectKey, hasher, signal);
    const pos = await position;
    const { bytes, sha256 } = hasher.digest();
    onProgress(bytes);
    // Read back what the target stored: a backup counts only once its bytes are proven.
    const stored = await sha256Of(await target.download(job.objectKey));
    if (stored.sha256 !== sha256 || stored.bytes !== bytes) {
      throw new Error(`verification failed: the target holds ${stored.bytes} bytes with SHA-256 ${stored.sha256}, the stream had ${bytes} with ${sha256}`);
    }
    const manifest: BackupManifest = {
      format: 'kiver-backup/1', id: job.id, service: job.service, source: source.kind, ordinal: job.ordinal, node,
      startedAt, finishedAt: new Date().toISOString(), size: bytes, sha256, position: pos, object: job.objectKey,
    };
    await target.putSmall(job.manifestKey, JSON.stringify(manifest, null, 2));
    return { bytes, sha256, position: pos, verified: true };
  } catch (err) {
    if (uploaded) await target.remove(job.objectKey).catch(() => {});
    throw err;
  }
}

export async function runRestore(job: BackupJob, consumer: RestoreConsumer, target: BackupTarget, onProgress: (bytes: number) => void): Promise<{ bytes: number }> {
  const manifest = JSON.parse(await target.getSmall(job.manifestKey)) as BackupManifest;
  if (manifest.sha256 !== job.sha256) throw new Error(`the manifest's SHA-256 ${manifest.sha256} differs from the backup record's ${job.sha256}`);
  const hasher = through(await target.download(job.objectKey), hashing(onProgress));
  try {
    await consumer.receive(hasher).catch((err: Error) => {
      throw new Error(`the backup stream could not be unpacked before its checksum was checked (${err.message}); nothing restored`);
    });
    const { bytes, sha256 } = hasher.digest();
    if (sha256 !== manifest.sha256 || bytes !== manifest.size) {
      throw new Error(`checksum mismatch: read ${bytes} bytes with SHA-256 ${sha256}, the manifest says ${manifest.size} bytes with ${manifest.sha256}; nothing restored`);
    }
    await consumer.commit();
    return { bytes };
  } catch (err) {
    await consumer.discard().catch(() => {});
    throw err;
  }
}

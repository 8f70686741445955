/**
 * S3 target (Ceph RGW or any S3). Path-style requests, and the SDK's default request
 * checksums off: RGW 16.2 refuses a streamed PutObject with them (411 MissingContentLength).
 * Uploads are multipart from a stream (8 MiB parts, 4 in flight): memory stays bounded
 * and nothing is staged on disk; a failed upload is aborted, so no partial object stays.
 */
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { BackupTarget } from './target.js';
import type { TargetConfig } from '../model/backup.js';

export const PART_SIZE = 8 * 1024 * 1024;

type S3Spec = NonNullable<TargetConfig['s3']>;

/** The SDK's client for a target, with the settings RGW needs. */
export function s3Client(spec: S3Spec, opts: { attempts?: number } = {}): S3Client {
  return new S3Client({
    endpoint: spec.url,
    region: spec.region ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: spec.accessKey, secretAccessKey: spec.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: opts.attempts ?? 3,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

/** One line naming what S3 said (or why it could not be reached). */
export function describeS3Error(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string }; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const net = e.code ?? e.cause?.code;
  if (net && /^E[A-Z]+$/.test(net)) return `cannot reach the target (${net})`;
  const what: Record<string, string> = {
    InvalidAccessKeyId: 'the access key is not known to the target',
    SignatureDoesNotMatch: 'the secret key is wrong',
    AccessDenied: 'the credentials may not do this',
    NoSuchBucket: 'the bucket does not exist',
    QuotaExceeded: 'the target is full (quota exceeded)',
    EntityTooLarge: 'the object is too large for the target',
  };
  const name = e.name ?? 'Error';
  // HEAD answers carry no body: the SDK cannot name the error, the status says enough.
  if (name === 'Unknown' || name === 'UnknownError' || name === 'Forbidden' || name === 'NotFound') {
    if (status === 403) return 'the target refused the credentials (HTTP 403): wrong access key or secret key, or no right to the bucket';
    if (status === 404) return 'not found (HTTP 404)';
  }
  const known = what[name];
  return `${known ? `${known}: ` : ''}${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name && e.message !== 'UnknownError' ? `: ${e.message}` : ''}`.slice(0, 500);
}

export class S3Target implements BackupTarget {
  private readonly client: S3Client;
  constructor(private readonly spec: S3Spec) {
    this.client = s3Client(spec);
  }

  async upload(key: string, body: Readable, signal?: AbortSignal): Promise<void> {
    const up = new Upload({
      client: this.client, params: { Bucket: this.spec.bucket, Key: key, Body: body },
      partSize: PART_SIZE, queueSize: 4, leavePartsOnError: false,
    });
    const onAbort = () => void up.abort().catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await up.done();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async download(key: string): Promise<Readable> {
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: key }));
    return res.Body as Readable;
  }

  async putSmall(key: string, body: string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.spec.bucket, Key: key, Body: body, ContentType: 'application/json' }));
  }

  async getSmall(key: string): Promise<string> {
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: key }));
    return res.Body!.transformToString();
  }

  async remove(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: key }));
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.spec.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of res.Contents ?? []) if (o.Key) out.push(o.Key);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async prepare(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.spec.bucket }));
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
      await this.client.send(new CreateBucketCommand({ Bucket: this.spec.bucket }));
    }
  }

  close(): void {
    this.client.destroy();
  }
}

/**
 * Where backup bytes go. Two kinds: S3 (Ceph RGW, any S3) and RBD (`rbd import -`).
 * `upload` streams: nothing is staged on local disk, and an upload that fails leaves
 * no object under its key (S3: the multipart upload is aborted; RBD: the image is removed).
 */
import type { Readable } from 'node:stream';
import type { TargetConfig } from '../model/backup.js';
import { S3Target } from './s3-target.js';
import { RbdTarget } from './rbd-target.js';

export interface BackupTarget {
  /** Streams `body` to `key`; resolves when the object is complete. */
  upload(key: string, body: Readable, signal?: AbortSignal): Promise<void>;
  /** The object's bytes as a stream (NotFound when absent). */
  download(key: string): Promise<Readable>;
  putSmall(key: string, body: string): Promise<void>;
  getSmall(key: string): Promise<string>;
  /** Removes the object; absent is fine. */
  remove(key: string): Promise<void>;
  /** Keys under a prefix. */
  list(prefix: string): Promise<string[]>;
  /** Creates the bucket/pool side when the kind allows and it is missing. */
  prepare(): Promise<void>;
  close(): void;
}

export function openTarget(cfg: TargetConfig): BackupTarget {
  if (cfg.s3) return new S3Target(cfg.s3);
  if (cfg.rbd) return new RbdTarget(cfg.rbd);
  throw new Error(`target ${cfg.name} has no kind`);
}

/** Object keys of one backup: data and its manifest side by side. */
export function backupKeys(service: string, id: string): { objectKey: string; manifestKey: string } {
  return { objectKey: `kiver/${service}/${id}/data`, manifestKey: `kiver/${service}/${id}/manifest.json` };
}

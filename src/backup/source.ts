/**
 * What a service type gives the backup machinery (the catalog's backup/restore hooks
 * plug in here; see README "Backups"):
 *
 * - `BackupSource.open()` starts a consistent backup of one replica and returns its
 *   byte stream plus a promise of the position the backup ends at (MariaDB: the GTID
 *   `mariabackup --stream=xbstream` reports; Redis: the replication offset of the RDB).
 *   The promise settles after the stream ended; a source that fails destroys the stream.
 * - `RestoreConsumer` takes the bytes of a backup into a staging place (`receive`), and
 *   only after the machinery has checked the stream's SHA-256 is it told to `commit`
 *   (make it the new replica's data) — or `discard` on a mismatch or error.
 *
 * Everything runs on the node that holds the replica (the agent), next to the data.
 */
import type { Readable } from 'node:stream';
import type { BackupPosition } from '../model/backup.js';

export interface BackupStream {
  stream: Readable;
  /** Settles after the stream ended: where the backup ends in the source's terms. */
  position: Promise<BackupPosition>;
}

export interface BackupSource {
  /** Names the source in the manifest (e.g. `app-files`, `mariabackup`, `redis-rdb`). */
  readonly kind: string;
  open(signal: AbortSignal): Promise<BackupStream>;
}

export interface RestoreConsumer {
  /** Reads the whole stream into staging; rejects if it cannot. */
  receive(stream: Readable): Promise<void>;
  /** The checksum matched: make the staged data live. */
  commit(): Promise<void>;
  /** Mismatch or failure: remove the staged data; nothing live was touched. */
  discard(): Promise<void>;
}

/** Where a job's replica lives on this node (the agent's roots and the replica identity). */
export interface ReplicaPlace {
  dataRoot: string;
  service: string;
  ordinal: number;
  image: string;
}

/** A service type's hooks: which source backs a replica up and which consumer restores one. */
export interface BackupHooks {
  /** Whether this type handles the service (e.g. by image). The first that matches wins. */
  matches(place: ReplicaPlace): boolean;
  source(place: ReplicaPlace): BackupSource;
  consumer(place: ReplicaPlace): RestoreConsumer;
}

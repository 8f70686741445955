/**
 * Backups: targets (where backups go), backups (one stream of one replica, with its
 * manifest), restores (into a new service) and per-service policies (cron, retention).
 * Wire schemas and stored shapes; the machinery is in src/backup/.
 */
import { Type, type Static } from '@sinclair/typebox';
import { SERVICE_NAME } from './names.js';

export const TARGET_NAME = '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$';
/** `<service>.<stamp>`: service names have no dots, so a prefix of `<service>.` lists one service's backups. */
export const BACKUP_ID = '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?\\.[a-z0-9]{1,40}$';
const NO_SPACE = '^\\S+$';

export const S3TargetSpec = Type.Object({
  url: Type.String({ pattern: '^https?://[A-Za-z0-9.:\\[\\]-]+(:[0-9]{1,5})?/?$', maxLength: 255, description: 'S3 endpoint, e.g. http://rgw.example:7480 (path-style requests)' }),
  bucket: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'bucket name (created by check when missing)' }),
  region: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$' })),
  accessKey: Type.String({ minLength: 1, maxLength: 256, pattern: NO_SPACE }),
  secretKey: Type.String({ minLength: 1, maxLength: 256, pattern: NO_SPACE }),
}, { additionalProperties: false });

export const RbdTargetSpec = Type.Object({
  pool: Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$' }),
  conf: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9_./-]{1,255}$', description: 'ceph.conf on the nodes (default /etc/ceph/ceph.conf)' })),
  user: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'cephx user (default admin)' })),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: NO_SPACE, description: 'cephx key (sealed at rest)' })),
}, { additionalProperties: false });

export const TargetCreate = Type.Object({
  name: Type.String({ pattern: TARGET_NAME }),
  s3: Type.Optional(S3TargetSpec),
  rbd: Type.Optional(RbdTargetSpec),
}, { additionalProperties: false });
export type TargetCreate = Static<typeof TargetCreate>;

/** Opened target settings: only on their way to the agent that runs a job, never stored or returned to users. */
export interface TargetConfig {
  name: string;
  s3?: Static<typeof S3TargetSpec>;
  rbd?: Static<typeof RbdTargetSpec>;
}

/** Stored at /kiver/backup-targets/<name>: keys as AES-256-GCM envelopes. */
export interface StoredTarget {
  name: string;
  kind: 's3' | 'rbd';
  s3?: { url: string; bucket: string; region?: string; accessKeyEnc: string; secretKeyEnc: string };
  rbd?: { pool: string; conf?: string; user?: string; keyEnc?: string };
  createdAt: string;
}

export const TargetView = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  s3: Type.Optional(Type.Object({ url: Type.String(), bucket: Type.String(), region: Type.Optional(Type.String()), accessKey: Type.String(), secretKey: Type.String() })),
  rbd: Type.Optional(Type.Object({ pool: Type.String(), conf: Type.Optional(Type.String()), user: Type.Optional(Type.String()), key: Type.Optional(Type.String()) })),
  createdAt: Type.String(),
});
export type TargetView = Static<typeof TargetView>;

/** What `target check` found: each step, and the first that failed with its cause. */
export const TargetCheck = Type.Object({
  ok: Type.Boolean(),
  steps: Type.Array(Type.Object({ step: Type.String(), ok: Type.Boolean(), ms: Type.Number(), error: Type.Optional(Type.String()) })),
});
export type TargetCheck = Static<typeof TargetCheck>;

/** Where a backup ends in the source's own terms (GTID, replication offset, …); `kind` names the source. */
export const BackupPosition = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]));
export type BackupPosition = Static<typeof BackupPosition>;

export const BackupState = Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')]);
export type BackupState = Static<typeof BackupState>;

/** Stored at /kiver/backups/<id> and returned as is (it holds no secret). */
export const Backup = Type.Object({
  id: Type.String(),
  service: Type.String(),
  target: Type.String(),
  trigger: Type.Union([Type.Literal('manual'), Type.Literal('schedule')]),
  /** The cron slot a scheduled backup is for (ISO time). */
  slot: Type.Optional(Type.String()),
  state: BackupState,
  /** The replica the stream is taken from and its node. */
  ordinal: Type.Optional(Type.Integer()),
  node: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  createdAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  finishedAt: Type.Optional(Type.String()),
  /** Last progress report from the agent (a running job without one for a while is failed). */
  progressAt: Type.Optional(Type.String()),
  /** Bytes streamed so far (the size once completed). */
  bytes: Type.Integer(),
  durationMs: Type.Optional(Type.Integer()),
  sha256: Type.Optional(Type.String()),
  position: Type.Optional(BackupPosition),
  /** The stored object was read back and its SHA-256 matched. */
  verified: Type.Boolean(),
  objectKey: Type.String(),
  manifestKey: Type.String(),
  error: Type.Optional(Type.String()),
});
export type Backup = Static<typeof Backup>;

/** The manifest object written next to the data once the data is complete (a backup without one is not a backup). */
export interface BackupManifest {
  format: 'kiver-backup/1';
  id: string;
  service: string;
  source: string;
  ordinal: number;
  node: string;
  startedAt: string;
  finishedAt: string;
  size: number;
  sha256: string;
  position: BackupPosition;
  object: string;
}

export const BackupCreate = Type.Object({
  service: Type.String({ pattern: SERVICE_NAME }),
  /** Default: the service's policy target. */
  target: Type.Optional(Type.String({ pattern: TARGET_NAME })),
}, { additionalProperties: false });

export const PolicyFields = {
  schedule: Type.String({ minLength: 1, maxLength: 120, description: 'cron expression (5 or 6 fields), e.g. "0 2 * * *"' }),
  tz: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone of the schedule (default UTC)' })),
  target: Type.String({ pattern: TARGET_NAME }),
  keep: Type.Optional(Type.Integer({ description: 'completed backups kept at least (default 7)' })),
  keepDays: Type.Optional(Type.Integer({ description: 'completed backups younger than this are kept too' })),
};
export const PolicySet = Type.Object(PolicyFields, { additionalProperties: false });
export type PolicySet = Static<typeof PolicySet>;

/** Stored at /kiver/backup-policies/<service>. */
export const BackupPolicy = Type.Object({
  service: Type.String(),
  schedule: Type.String(),
  tz: Type.String(),
  target: Type.String(),
  keep: Type.Integer(),
  keepDays: Type.Optional(Type.Integer()),
  /** The last cron slot a backup was created for (ISO); slots up to it never run again. */
  lastSlot: Type.Optional(Type.String()),
  createdAt: Type.String(),
});
export type BackupPolicy = Static<typeof BackupPolicy>;

export const RestoreCreate = Type.Object({
  backup: Type.String({ pattern: BACKUP_ID }),
  to: Type.String({ pattern: SERVICE_NAME }),
}, { additionalProperties: false });

/** Stored at /kiver/restores/<new service>. */
export const Restore = Type.Object({
  to: Type.String(),
  backup: Type.String(),
  service: Type.String(),
  state: BackupState,
  node: Type.String(),
  createdAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  finishedAt: Type.Optional(Type.String()),
  progressAt: Type.Optional(Type.String()),
  bytes: Type.Integer(),
  /** Replica count the new service gets once the data is in place. */
  replicas: Type.Integer(),
  error: Type.Optional(Type.String()),
});
export type Restore = Static<typeof Restore>;

/** What an agent reports while a job runs and when it ends. */
export const JobReport = Type.Object({
  state: BackupState,
  bytes: Type.Integer({ minimum: 0 }),
  sha256: Type.Optional(Type.String({ pattern: '^[a-f0-9]{64}$' })),
  position: Type.Optional(BackupPosition),
  verified: Type.Optional(Type.Boolean()),
  source: Type.Optional(Type.String({ maxLength: 32 })),
  error: Type.Optional(Type.String({ maxLength: 2048 })),
}, { additionalProperties: false });
export type JobReport = Static<typeof JobReport>;

/** A job as an agent receives it: what to stream where, with the target opened for this one job. */
export interface BackupJob {
  kind: 'backup' | 'restore';
  id: string;
  service: string;
  ordinal: number;
  /** The service's image (a source may pick its hooks by it). */
  image: string;
  objectKey: string;
  manifestKey: string;
  target: TargetConfig;
  /** restore: the SHA-256 the stream must have before the data is used; and the replica count to restore. */
  sha256?: string;
  replicas?: number;
}

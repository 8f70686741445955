/**
 * The versioned key-value contract (DESIGN.md principle 2): etcd's data model.
 * Every backend (sqlite/, etcd/) implements exactly this and passes
 * store/contract.ts; nothing above the store knows which backend runs.
 *
 * - Keys are strings (`/kiver/<kind>/<name>`), values are strings (JSON by convention).
 * - Every successful write (put, delete, txn with writes) bumps one global revision.
 * - `modRevision` of a key that does not exist is 0, so CAS with `modRevision: 0`
 *   means "create only".
 * - Watches deliver every change under a prefix in revision order, starting after
 *   a given revision, with no gap; asking for a compacted revision throws CompactedError.
 * - Keys attached to a lease are deleted (with delete events) when the lease expires
 *   or is revoked.
 */
export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** Number of writes since creation (1 after the first put). */
  version: number;
  /** 0 when the key has no lease. */
  lease: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision at which this read was taken (watch from here for a gap-free follow). */
  revision: number;
}

export interface Compare {
  key: string;
  /** The key's mod revision must equal this (0 = key must not exist). */
  modRevision: number;
}

export type Op =
  | { type: 'put'; key: string; value: string; lease?: number }
  | { type: 'delete'; key: string }
  /** Deletes every key with this prefix. */
  | { type: 'deletePrefix'; prefix: string };

export interface TxnRequest {
  compare: Compare[];
  success: Op[];
  /** Run when any compare fails; default none. */
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction (unchanged if it wrote nothing). */
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For put: the new state. For delete: key, modRevision = the delete's revision, value ''. */
  kv: KeyValue;
  /** The state before this event, when known (always for delete). */
  prevKv?: KeyValue;
}

export interface Watch {
  /** Stops delivery; resolves when no more callbacks will run. */
  cancel(): Promise<void>;
}

export interface WatchOptions {
  /** Deliver every event with revision > afterRevision. */
  afterRevision: number;
  /** Events of one revision arrive together, in order. */
  onEvents: (events: WatchEvent[], revision: number) => void;
  /** The watch cannot continue (e.g. CompactedError); the caller re-lists and re-watches. */
  onError: (err: Error) => void;
}

export interface StoreMember {
  endpoint: string;
  ok: boolean;
  error?: string;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** All keys starting with prefix, sorted by key. */
  list(prefix: string, opts?: { limit?: number }): Promise<RangeResult>;
  /** Unconditional put; returns the new revision. */
  put(key: string, value: string, opts?: { lease?: number }): Promise<number>;
  /** Returns whether the key existed. */
  delete(key: string): Promise<boolean>;
  /** Atomic: all compares checked and all ops of the chosen branch applied in one revision. */
  txn(req: TxnRequest): Promise<TxnResult>;
  watch(prefix: string, opts: WatchOptions): Promise<Watch>;
  /** Grants a lease of ttl seconds; returns its id (> 0). */
  grantLease(ttlSeconds: number): Promise<number>;
  /** Renews a lease; throws NotFoundError if it has expired or never existed. Returns the ttl. */
  keepAlive(lease: number): Promise<number>;
  revokeLease(lease: number): Promise<void>;
  /** Current revision. */
  revision(): Promise<number>;
  /** Each member's health, for backends with members (etcd); absent for an embedded store. */
  members?(): Promise<StoreMember[]>;
  close(): Promise<void>;
}

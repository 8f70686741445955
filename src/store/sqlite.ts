/**
 * The embedded store: the etcd data model (store.ts) on SQLite, designed like k3s's kine.
 *
 * Tables:
 * - `kv`: the current state, one row per live key (what get/list read).
 * - `log`: one row per changed key per revision, with the state before, so a watch can
 *   replay history from any revision still kept. Compaction trims it to the last N
 *   revisions. The newest revision is always in it, so it also tells the current revision
 *   (no counter row to rewrite on every commit).
 * - `lease`: ttl and absolute expiry (ms since epoch), so leases survive a restart and
 *   continue from their stored expiry.
 * - `meta`: the compacted revision and the lease id sequence.
 *
 * One process owns a store file: it is opened with an exclusive lock (a second server on
 * the same file fails to open instead of silently missing watch events, since watches are
 * fed in-process by the writes themselves). better-sqlite3 is synchronous, so every method
 * does its work before it returns its promise; writes are serialized and never interleave.
 */
import { isNoSpace, storeSpace } from './no-space.js';
import Database from 'better-sqlite3';
import { CompactedError, InputError, NotFoundError, UnavailableError } from '../errors.js';
import type {
  KeyValue,
  Op,
  RangeResult,
  Store,
  TxnRequest,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './store.js';

export interface SqliteStoreOptions {
  /** Keep the watch log for this many revisions (default 10,000). */
  retainRevisions?: number;
  /** How often to compact the log (default 1,000 ms; 0 disables the timer). */
  compactIntervalMs?: number;
  /** How often to look for expired leases (default 250 ms). */
  leaseCheckIntervalMs?: number;
  /** How long open waits for another process to let go of the file (default 5,000 ms). */
  lockTimeoutMs?: number;
}

/** key, value, create_rev, mod_rev, version, lease (raw rows: no per-row object to build) */
type KvRow = [string, string, number, number, number, number];

interface LogRow {
  rev: number;
  deleted: number;
  key: string;
  value: string;
  create_rev: number;
  version: number;
  lease: number;
  prev_value: string | null;
  prev_create_rev: number | null;
  prev_mod_rev: number | null;
  prev_version: number | null;
  prev_lease: number | null;
}

interface Watcher {
  prefix: string;
  afterRevision: number;
  onEvents: WatchOptions['onEvents'];
  onError: WatchOptions['onError'];
  queue: Array<[WatchEvent[], number]>;
  scheduled: boolean;
  closed: boolean;
}

/** Revisions compacted per timer tick at most, so one tick never blocks writes for long. */
const COMPACT_STEP = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0), ('lease_seq', 0);
CREATE TABLE IF NOT EXISTS kv (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL,
  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease <> 0;
CREATE TABLE IF NOT EXISTS log (
  id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, deleted INTEGER NOT NULL,
  key TEXT NOT NULL, value TEXT NOT NULL, create_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,
  prev_value TEXT, prev_create_rev INTEGER, prev_mod_rev INTEGER, prev_version INTEGER, prev_lease INTEGER
);
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lease_expiry ON lease (expires_at);
`;

// Page writes are what a commit costs here (two write calls per WAL page), so the layout
// keeps them few: rowid tables append new rows to their last page, leaving only the key
// index pages scattered. Measured: ~10 WAL pages per six-put transaction, against ~14 with
// WITHOUT ROWID tables keyed by (key) and (rev, seq).
//
// Log row ids: id = max(last id + 1, rev * 2^20). Ids grow in commit order and every row
// of revision r has id >= r * 2^20, so "revisions after R" is the id range from
// (R + 1) * 2^20, found without an index on rev. (A revision with more than 2^20 changes
// would spill into the next block; the rev column, filtered too, keeps reads exact.)
const REV_BLOCK = 1048576;
const NEXT_LOG_ID = `max((SELECT ifnull(max(id), 0) FROM log) + 1, NEW.mod_rev * ${REV_BLOCK})`;

// A put is one UPSERT; these triggers write its log row inside SQLite with the old row at
// hand, which saves two statement round trips per put. They are TEMP (per connection) so
// the file holds no code that could go stale across versions.
const TRIGGERS = `
CREATE TEMP TRIGGER kv_log_insert AFTER INSERT ON main.kv BEGIN
  INSERT INTO log (id, rev, deleted, key, value, create_rev, version, lease)
  VALUES (${NEXT_LOG_ID}, NEW.mod_rev, 0, NEW.key, NEW.value, NEW.create_rev, NEW.version, NEW.lease);
END;
CREATE TEMP TRIGGER kv_log_update AFTER UPDATE ON main.kv BEGIN
  INSERT INTO log (id, rev, deleted, key, value, create_rev, version, lease,
                   prev_value, prev_create_rev, prev_mod_rev, prev_version, prev_lease)
  VALUES (${NEXT_LOG_ID}, NEW.mod_rev, 0, NEW.key, NEW.value, NEW.create_rev, NEW.version, NEW.lease,
          OLD.value, OLD.create_rev, OLD.mod_rev, OLD.version, OLD.lease);
END;
`;
const LOG_COLS = `rev, deleted, key, value, create_rev, version, lease,
  prev_value, prev_create_rev, prev_mod_rev, prev_version, prev_lease`;

// Prefix ranges: SQLite compares TEXT bytewise (UTF-8, BINARY collation), and 0xFF never
// occurs in UTF-8, so [p, p || x'FF') is exactly "starts with p" and uses the key index.
// Byte order is also etcd's key order, so both backends sort lists identically.
const PREFIX_RANGE = `key >= @p AND key < (@p || x'ff')`;
const KV_COLS = 'key, value, create_rev, mod_rev, version, lease';

export class SqliteStore implements Store {
  private readonly watchers = new Set<Watcher>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly retain: number;
  private readonly st: ReturnType<typeof prepare>;
  private readonly writeTxn: Database.Transaction<(fn: (rev: number) => unknown, rev: number) => unknown>;
  /** Current revision; cached because this process is the only writer (exclusive lock). */
  private rev: number;
  /** Set by a write that changed something; only then does the revision advance. */
  private dirty = false;
  private closed = false;
  private lastWriteAt = 0;
  private lastCheckpointAt = Date.now();

  static open(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const db = new Database(path);
    try {
      return new SqliteStore(db, opts);
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new UnavailableError(`store file ${path} is in use by another process`);
      }
      throw err;
    }
  }

  private constructor(
    private readonly db: Database.Database,
    opts: SqliteStoreOptions,
  ) {
    // Exclusive: one owner (see above), and no file-lock system calls per transaction.
    db.pragma('locking_mode = EXCLUSIVE');
    // A restarting server may briefly overlap the old one; wait a moment for its lock.
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.lockTimeoutMs ?? 5000))}`);
    // WAL + synchronous=NORMAL: a commit is an append to the WAL, fsync'd only at
    // checkpoints. A killed process (kill -9) loses nothing that was committed and never
    // leaves a torn transaction: WAL frames of an unfinished transaction carry no commit
    // marker and are ignored on the next open. Only an OS crash or power loss may lose the
    // last commits (still never half a transaction).
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // Checkpoints (copy WAL pages into the file, two fsyncs) run from the maintenance
    // timer when writes pause (or every 5 s under steady load), instead of every 4 MB
    // inside whichever commit crosses the line: a burst of writes never waits on them,
    // and a page rewritten by many commits is copied once. 64 MB of WAL is the backstop.
    db.pragma('wal_autocheckpoint = 16384');
    db.pragma('journal_size_limit = 67108864');
    db.pragma('cache_size = -32768'); // 32 MB: a 20k-key list stays in memory
    db.exec(SCHEMA);
    db.exec(TRIGGERS);
    this.st = prepare(db);
    this.retain = Math.max(1, opts.retainRevisions ?? 10_000);
    this.rev = Math.max((this.st.maxLogRev.get() as number | null) ?? 0, this.meta('compacted'));

    // Every write runs inside this: one SQLite transaction (IMMEDIATE: the write lock is
    // taken up front), all its changes at one new revision.
    this.writeTxn = db.transaction((fn: (rev: number) => unknown, rev: number) => fn(rev));

    this.every(opts.leaseCheckIntervalMs ?? 250, () => this.expireLeases());
    const compactEvery = opts.compactIntervalMs ?? 1000;
    if (compactEvery > 0) {
      this.every(compactEvery, () => {
        this.compactStep();
        this.checkpointStep();
      });
    }
  }

  private meta(name: string): number {
    return this.st.getMeta.get(name) as number;
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(() => {
      try {
        fn();
      } catch (err) {
        // Reported, and tried again next tick; housekeeping must not crash the server. A full disk is one episode, said once.
        if (isNoSpace(err)) storeSpace.failed(err);
        else process.emitWarning(`kiver sqlite store: ${(err as Error).message}`);
      }
    }, ms);
    t.unref(); // housekeeping must never keep a process alive
    this.timers.push(t);
  }

  // ---- reads ----

  async get(key: string): Promise<KeyValue | undefined> {
    const row = this.st.get.get(key) as KvRow | undefined;
    return row && toKv(row);
  }

  async list(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    const limit = opts.limit ?? 0;
    if (!Number.isInteger(limit) || limit < 0) throw new InputError('limit must be a non-negative integer', 'limit');
    const rows = this.st.list.all({ p: prefix, limit: limit || -1 }) as KvRow[];
    return { kvs: rows.map(toKv), revision: this.rev };
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  /** Revisions up to and including this one are gone from the watch log. */
  compactedRevision(): number {
    return this.meta('compacted');
  }

  // ---- writes ----

  async put(key: string, value: string, opts: { lease?: number } = {}): Promise<number> {
    checkPut(key, value, 'key');
    this.write((rev) => this.applyPut(key, value, opts.lease ?? 0, rev));
    return this.rev;
  }

  async delete(key: string): Promise<boolean> {
    return this.write((rev) => this.applyDelete(key, rev));
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    const failure = req.failure ?? [];
    checkOps(req.success, 'success');
    checkOps(failure, 'failure');
    const succeeded = this.write((rev) => {
      let ok = true;
      for (const c of req.compare) {
        if (((this.st.modRev.get(c.key) as number | undefined) ?? 0) !== c.modRevision) {
          ok = false;
          break;
        }
      }
      for (const op of ok ? req.success : failure) this.applyOp(op, rev);
      return ok;
    });
    return { succeeded, revision: this.rev };
  }

  /**
   * Runs fn in one SQLite transaction at the next revision. If fn throws, everything it
   * did is rolled back and the revision stays. Watchers hear about it after the commit.
   */
  private write<T>(fn: (rev: number) => T): T {
    const rev = this.rev + 1;
    this.dirty = false;
    const result = storeSpace.guard(() => this.writeTxn.immediate(fn, rev) as T);
    if (this.dirty) {
      this.rev = rev;
      this.lastWriteAt = Date.now();
      if (this.watchers.size > 0) this.dispatch(rev);
    }
    return result;
  }

  private applyOp(op: Op, rev: number): void {
    if (op.type === 'put') this.applyPut(op.key, op.value, op.lease ?? 0, rev);
    else if (op.type === 'delete') this.applyDelete(op.key, rev);
    else this.logDeletes(this.st.deletePrefix.all({ p: op.prefix }) as KvRow[], rev);
  }

  private applyPut(key: string, value: string, lease: number, rev: number): void {
    if (lease !== 0 && !this.st.leaseAlive.get(lease, Date.now())) {
      throw new NotFoundError(`lease ${lease} not found or expired`, 'lease');
    }
    this.st.upsert.run(key, value, rev, rev, lease);
    this.dirty = true;
  }

  private applyDelete(key: string, rev: number): boolean {
    const prev = this.st.delete.get(key) as KvRow | undefined;
    if (prev) this.logDeletes([prev], rev);
    return prev !== undefined;
  }

  private logDeletes(rows: KvRow[], rev: number): void {
    for (const [key, value, createRev, modRev, version, lease] of rows) {
      this.st.logDelete.run({ rev, key, value, createRev, modRev, version, lease });
    }
    if (rows.length > 0) this.dirty = true;
  }

  // ---- watches ----

  async watch(prefix: string, opts: WatchOptions): Promise<Watch> {
    const after = opts.afterRevision;
    if (!Number.isInteger(after) || after < 0) {
      throw new InputError('afterRevision must be a non-negative integer', 'afterRevision');
    }
    const w: Watcher = {
      prefix,
      afterRevision: after,
      onEvents: opts.onEvents,
      onError: opts.onError,
      queue: [],
      scheduled: false,
      closed: false,
    };
    const compacted = this.meta('compacted');
    if (after < compacted) {
      w.closed = true;
      setImmediate(() => opts.onError(new CompactedError(compacted)));
      return { cancel: async () => {} };
    }
    // Replay and registration happen in this one synchronous stretch: no write can run
    // in between, so the replayed history and the live events meet with no gap or overlap.
    w.queue = groupByRevision(this.st.replay.all({ after, p: prefix }) as LogRow[]);
    this.watchers.add(w);
    this.schedule(w);
    return {
      cancel: async () => {
        w.closed = true;
        w.queue = [];
        this.watchers.delete(w);
      },
    };
  }

  private dispatch(rev: number): void {
    const events = groupByRevision(this.st.logAt.all({ rev }) as LogRow[])[0][0];
    for (const w of this.watchers) {
      if (rev <= w.afterRevision) continue;
      const mine = w.prefix === '' ? events : events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length === 0) continue;
      w.queue.push([mine, rev]);
      this.schedule(w);
    }
  }

  /** Delivery is always deferred: a callback never runs inside a write, so it may write. */
  private schedule(w: Watcher): void {
    if (w.scheduled || w.closed || w.queue.length === 0) return;
    w.scheduled = true;
    setImmediate(() => {
      w.scheduled = false;
      const batches = w.queue;
      w.queue = [];
      for (const [events, rev] of batches) {
        if (w.closed) return;
        try {
          w.onEvents(events, rev);
        } catch (err) {
          // A throwing callback ends its watch (reported, not lost); the store carries on.
          w.closed = true;
          this.watchers.delete(w);
          w.onError(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
    });
  }

  // ---- compaction ----

  /**
   * Drops log rows up to `revision` (default: all but the last `retainRevisions`).
   * Watches from before it then fail with CompactedError. Returns the compacted revision.
   */
  compact(revision?: number): number {
    const target = Math.min(revision ?? this.rev - this.retain, this.rev);
    return storeSpace.guard(() => this.db
      .transaction(() => {
        const compacted = this.meta('compacted');
        if (target <= compacted) return compacted;
        this.st.compactLog.run((target + 1) * REV_BLOCK);
        this.st.setMeta.run(target, 'compacted');
        this.lastWriteAt = Date.now(); // so its pages get checkpointed too
        return target;
      })
      .immediate());
  }

  private checkpointStep(): void {
    const now = Date.now();
    if (this.lastWriteAt < this.lastCheckpointAt) return; // nothing new since the last one
    if (now - this.lastWriteAt < 100 && now - this.lastCheckpointAt < 5000) return; // busy: later
    this.db.pragma('wal_checkpoint(PASSIVE)');
    this.lastCheckpointAt = now;
  }

  private compactStep(): void {
    const compacted = this.meta('compacted');
    const target = Math.min(this.rev - this.retain, compacted + COMPACT_STEP);
    if (target > compacted) this.compact(target);
  }

  // ---- leases ----

  async grantLease(ttlSeconds: number): Promise<number> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new InputError('lease ttl must be a positive whole number of seconds', 'ttl');
    }
    return storeSpace.guard(() => this.db
      .transaction(() => {
        // Ids come from a sequence, never reused: a stale holder can't renew another's lease.
        const id = this.meta('lease_seq') + 1;
        this.st.setMeta.run(id, 'lease_seq');
        this.st.leaseInsert.run(id, ttlSeconds, Date.now() + ttlSeconds * 1000);
        return id;
      })
      .immediate());
  }

  async keepAlive(lease: number): Promise<number> {
    const row = this.st.leaseGet.get(lease) as { ttl: number; expires_at: number } | undefined;
    const now = Date.now();
    if (row && row.expires_at > now) {
      storeSpace.guard(() => this.st.leaseRenew.run(now + row.ttl * 1000, lease));
      return row.ttl;
    }
    // Expired but not reaped yet: reap it now, so its keys are gone before the caller hears.
    if (row) this.revoke(lease);
    throw new NotFoundError(`lease ${lease} not found or expired`, 'lease');
  }

  async revokeLease(lease: number): Promise<void> {
    if (!this.revoke(lease)) throw new NotFoundError(`lease ${lease} not found or expired`, 'lease');
  }

  /** Deletes the lease and its keys in one revision (like etcd). Returns whether it existed. */
  private revoke(lease: number): boolean {
    return this.write((rev) => {
      if (this.st.leaseDelete.run(lease).changes === 0) return false;
      this.logDeletes(this.st.deleteByLease.all(lease) as KvRow[], rev);
      return true;
    });
  }

  private expireLeases(): void {
    for (const id of this.st.leaseExpired.all(Date.now()) as number[]) this.revoke(id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const w of this.watchers) {
      w.closed = true;
      w.queue = [];
    }
    this.watchers.clear();
    this.db.close();
  }
}

/** Statements are prepared once per store: per-call preparation would dominate small writes. */
function prepare(db: Database.Database) {
  return {
    getMeta: db.prepare('SELECT value FROM meta WHERE name = ?').pluck(),
    setMeta: db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
    maxLogRev: db.prepare('SELECT rev FROM log ORDER BY id DESC LIMIT 1').pluck(),
    get: db.prepare(`SELECT ${KV_COLS} FROM kv WHERE key = ?`).raw(),
    modRev: db.prepare('SELECT mod_rev FROM kv WHERE key = ?').pluck(),
    list: db.prepare(`SELECT ${KV_COLS} FROM kv WHERE ${PREFIX_RANGE} ORDER BY key LIMIT @limit`).raw(),
    upsert: db.prepare(
      `INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (?, ?, ?, ?, 1, ?)
       ON CONFLICT (key) DO UPDATE SET
         value = excluded.value, mod_rev = excluded.mod_rev, version = version + 1, lease = excluded.lease`,
    ),
    delete: db.prepare(`DELETE FROM kv WHERE key = ? RETURNING ${KV_COLS}`).raw(),
    deletePrefix: db.prepare(`DELETE FROM kv WHERE ${PREFIX_RANGE} RETURNING ${KV_COLS}`).raw(),
    // "lease <> 0" repeats kv_lease's condition: without it SQLite cannot use that partial index for a
    // bound parameter and scans every key — per revoke, which made 10,000 nodes' leases O(N²).
    deleteByLease: db.prepare(`DELETE FROM kv WHERE lease = ? AND lease <> 0 RETURNING ${KV_COLS}`).raw(),
    logDelete: db.prepare(
      `INSERT INTO log (id, rev, deleted, key, value, create_rev, version, lease,
                        prev_value, prev_create_rev, prev_mod_rev, prev_version, prev_lease)
       VALUES (max((SELECT ifnull(max(id), 0) FROM log) + 1, @rev * ${REV_BLOCK}), @rev, 1, @key, '', 0, 0, 0,
               @value, @createRev, @modRev, @version, @lease)`,
    ),
    replay: db.prepare(
      `SELECT ${LOG_COLS} FROM log WHERE id >= (@after + 1) * ${REV_BLOCK} AND rev > @after AND ${PREFIX_RANGE}
       ORDER BY id`,
    ),
    logAt: db.prepare(`SELECT ${LOG_COLS} FROM log WHERE id >= @rev * ${REV_BLOCK} AND rev = @rev ORDER BY id`),
    // Rows below this id are all of revisions <= the compacted one (see NEXT_LOG_ID).
    compactLog: db.prepare('DELETE FROM log WHERE id < ?'),
    leaseAlive: db.prepare('SELECT 1 FROM lease WHERE id = ? AND expires_at > ?').pluck(),
    leaseGet: db.prepare('SELECT ttl, expires_at FROM lease WHERE id = ?'),
    leaseInsert: db.prepare('INSERT INTO lease (id, ttl, expires_at) VALUES (?, ?, ?)'),
    leaseRenew: db.prepare('UPDATE lease SET expires_at = ? WHERE id = ?'),
    leaseDelete: db.prepare('DELETE FROM lease WHERE id = ?'),
    leaseExpired: db.prepare('SELECT id FROM lease WHERE expires_at <= ? ORDER BY expires_at').pluck(),
  };
}

function toKv(r: KvRow): KeyValue {
  return { key: r[0], value: r[1], createRevision: r[2], modRevision: r[3], version: r[4], lease: r[5] };
}

function groupByRevision(rows: LogRow[]): Array<[WatchEvent[], number]> {
  const out: Array<[WatchEvent[], number]> = [];
  let batch: WatchEvent[] = [];
  let batchRev = 0;
  for (const row of rows) {
    if (row.rev !== batchRev && batch.length > 0) {
      out.push([batch, batchRev]);
      batch = [];
    }
    batchRev = row.rev;
    batch.push(logEvent(row));
  }
  if (batch.length > 0) out.push([batch, batchRev]);
  return out;
}

function logEvent(r: LogRow): WatchEvent {
  const kv: KeyValue = r.deleted
    ? { key: r.key, value: '', createRevision: 0, modRevision: r.rev, version: 0, lease: 0 }
    : { key: r.key, value: r.value, createRevision: r.create_rev, modRevision: r.rev, version: r.version, lease: r.lease };
  const type = r.deleted ? 'delete' : 'put';
  if (r.prev_mod_rev === null) return { type, kv };
  const prevKv: KeyValue = {
    key: r.key,
    value: r.prev_value as string,
    createRevision: r.prev_create_rev as number,
    modRevision: r.prev_mod_rev,
    version: r.prev_version as number,
    lease: r.prev_lease as number,
  };
  return { type, kv, prevKv };
}

function checkPut(key: string, value: string, field: string): void {
  if (typeof key !== 'string' || key === '') throw new InputError('key must be a non-empty string', field);
  if (typeof value !== 'string') throw new InputError('value must be a string', field);
}

/**
 * etcd's rule (checkIntervals), so both backends reject the same transactions: within one
 * branch a key may be put at most once and not also be deleted.
 */
function checkOps(ops: Op[], field: string): void {
  const puts = new Set<string>();
  const deletes = new Set<string>();
  const prefixes: string[] = [];
  for (const op of ops) {
    if (op.type === 'put') {
      checkPut(op.key, op.value, field);
      if (puts.has(op.key)) throw new InputError(`duplicate key in txn: ${op.key}`, field);
      puts.add(op.key);
    } else if (op.type === 'delete') {
      if (typeof op.key !== 'string' || op.key === '') throw new InputError('key must be a non-empty string', field);
      deletes.add(op.key);
    } else if (op.type === 'deletePrefix') {
      if (typeof op.prefix !== 'string') throw new InputError('prefix must be a string', field);
      prefixes.push(op.prefix);
    } else {
      throw new InputError(`unknown op type ${(op as { type: unknown }).type}`, field);
    }
  }
  for (const key of puts) {
    if (deletes.has(key) || prefixes.some((p) => key.startsWith(p))) {
      throw new InputError(`duplicate key in txn: ${key} is both put and deleted`, field);
    }
  }
}

/**
 * The HA store: the same contract (store.ts) on an etcd cluster, through the npm `etcd3`
 * client's raw gRPC stubs (kv, lease, watch), so revisions, compares and events map 1:1.
 *
 * Failover (measured on this lab's machines: leader SIGKILL → writes again after ~1–2 s
 * with a tuned client, 6–7 s with etcd3's defaults):
 * - every attempt has its own deadline (callTimeoutMs), and a call retries through
 *   failover for up to retryWindowMs before it gives up with UnavailableError;
 * - each host sits behind a circuit breaker that opens on its first failure and
 *   half-opens after 500 ms, backing off to 4 s while it keeps failing (etcd3's default
 *   skips a host for 5 s after 3 timeouts).
 *   A CANCELLED status is never a host failure: it is what cancelling our own stream
 *   raises. Such a hair-trigger breaker must only ever see real failures — see
 *   endStream() for how our own stream shutdowns stay out of it;
 * - attempts in flight across an etcd leader election are abandoned and sent again once
 *   the new raft term shows (see call());
 * - etcd3's own global retry is off: whether a retry is safe depends on the call.
 *   Reads, keepAlive and puts are retried on any transient error (a put applied twice
 *   writes the same value twice). A delete or txn is retried only when the request
 *   provably never reached a member (no connection, no leader); otherwise its outcome is
 *   unknown and the caller gets UnavailableError — it re-reads and retries, as every
 *   level-triggered caller does anyway. Blindly re-sending a CAS that in fact committed
 *   would report a conflict for the caller's own write.
 *
 * Watches use one gRPC stream each and resume from the last delivered revision after any
 * stream failure, so a failover shows up as a pause, never as a gap.
 */
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { randomInt } from 'node:crypto';
import {
  castGrpcError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCCancelledError,
  GRPCUnavailableError,
  isRecoverableError,
  type IDuplexStream,
  type IKeyValue,
  type ILeaseKeepAliveResponse,
  type IOptions,
  type IRequestOp,
  type IWatchRequest,
  type IWatchResponse,
} from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, noop } from 'cockatiel';
import { CompactedError, InputError, KiverError, NotFoundError, UnavailableError } from '../errors.js';
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
  StoreMember,
} from './store.js';

export interface EtcdStoreOptions {
  /** Client URLs: http://host:2379, or https://… for TLS. */
  endpoints: string[];
  /** PEM files: ca verifies the members; cert+key authenticate this client. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Deadline of one attempt of one call (default 2,000 ms). */
  callTimeoutMs?: number;
  /** How long one call keeps retrying through a failover (default 15,000 ms). */
  retryWindowMs?: number;
}

/** What a gRPC call needs: its deadline, and an interceptor that lets us cancel it. */
type CallOptions = { deadline: number; interceptors: GrpcInterceptor[] };
/** @grpc/grpc-js's types, as etcd3 (which passes call options through to it) declares them. */
type GrpcInterceptor = NonNullable<NonNullable<Parameters<Etcd3['kv']['range']>[1]>['interceptors']>[number];
type GrpcCall = ReturnType<Parameters<GrpcInterceptor>[1]>;
const GRPC_CANCELLED = 1;
/** How long the election probe waits after a member was last seen failing (etcd's election: 1–2 s by default). */
const PROBE_MS = 5000;

/**
 * One attempt of one call, which abandon() cancels: a proposal that a follower forwarded to
 * a leader that then died is lost, never answered, and would otherwise wait out its whole
 * deadline although a new leader was elected meanwhile.
 */
class Attempt {
  readonly started = Date.now();
  private call?: GrpcCall;
  abandoned = false;
  /** Set by a caller whose call is a stream: how to end it without failing its host. */
  onAbandon?: () => void;

  constructor(readonly deadline: number) {}

  get options(): CallOptions {
    return {
      deadline: this.deadline,
      // Hands the call on unchanged (grpc-js only uses the interface; the type asks for its class).
      interceptors: [(options, nextCall) => (this.call = nextCall(options)) as ReturnType<GrpcInterceptor>],
    };
  }

  abandon(): void {
    this.abandoned = true;
    if (this.onAbandon) this.onAbandon();
    else this.call?.cancelWithStatus(GRPC_CANCELLED, 'abandoned: it was in flight across an etcd leader election');
  }
}

/**
 * When a failed attempt may be sent again: always (reads, puts), only if it never reached a
 * member, or also if we abandoned it across an election (a txn that fences itself, see txn()).
 */
type Retry = 'always' | 'if-not-sent' | 'if-not-sent-or-abandoned';

/** GET <endpoint>/health: etcd answers {"health":"true"} when the member has a leader and can serve. */
function memberHealth(endpoint: string, tls: EtcdStoreOptions['tls'], timeoutMs: number): Promise<StoreMember> {
  return new Promise((resolve) => {
    const url = new URL('/health', endpoint);
    const opts = url.protocol === 'https:'
      ? { ca: tls?.ca ? readFileSync(tls.ca) : undefined, cert: tls?.cert ? readFileSync(tls.cert) : undefined, key: tls?.key ? readFileSync(tls.key) : undefined }
      : {};
    const req = (url.protocol === 'https:' ? httpsGet : httpGet)(url, { ...opts, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const ok = res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body);
        resolve(ok ? { endpoint, ok } : { endpoint, ok, error: `HTTP ${res.statusCode}: ${body.slice(0, 200)}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ endpoint, ok: false, error: err.message }));
  });
}

const enc = (s: string) => Buffer.from(s, 'utf8');

/** etcd's range end for "every key starting with prefix" (the empty prefix: all keys). */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

function toKv(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}

/** The request never reached a member that could have applied it: safe to send again. */
function notSent(err: unknown): boolean {
  if (isBrokenCircuitError(err)) return true;
  const msg = String((err as Error)?.message ?? err);
  return /No connection established|ECONNREFUSED|failed to connect|Name resolution failed|etcdserver: no leader|raft proposal dropped|etcdserver: not capable/i.test(
    msg,
  );
}

/**
 * A member is gone or its cluster is electing: connection refused or reset, no leader,
 * leader changed. Not a deadline (that is also just a slow cluster), not CANCELLED (our own).
 */
function memberFailure(err: unknown): boolean {
  if (err instanceof GRPCUnavailableError) return true;
  return /etcdserver: (no leader|leader changed)|raft proposal dropped/i.test(String((err as Error)?.message ?? err));
}

function transient(err: unknown): boolean {
  return (typeof err === 'object' && err !== null && isRecoverableError(err as Error)) || isBrokenCircuitError(err);
}

/** etcd's answers → the store's typed errors. */
function mapError(err: unknown, what: string): Error {
  if (err instanceof KiverError) return err;
  const msg = String((err as Error)?.message ?? err);
  if (err instanceof EtcdLeaseInvalidError || msg.includes('requested lease not found')) {
    return new NotFoundError('lease not found or expired', 'lease');
  }
  if (msg.includes('duplicate key given in txn request')) {
    return new InputError('duplicate key in txn: a key may be written once per branch', 'txn');
  }
  if (msg.includes('key is not provided')) return new InputError('key must be a non-empty string', 'key');
  if (msg.includes('too many operations in txn request')) {
    return new InputError('too many operations in one txn for etcd (its --max-txn-ops, 128 by default)', 'txn');
  }
  if (msg.includes('request is too large')) return new InputError('request too large for etcd', 'txn');
  if (transient(err)) {
    const unknown = notSent(err) ? '' : ' (the write may or may not have been applied; re-read)';
    return new UnavailableError(`etcd ${what} failed: ${msg}${unknown}`);
  }
  return err instanceof Error ? err : new Error(msg);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What opens a host's circuit breaker: etcd3's recoverable errors (unavailable, deadline
 * exceeded, …) except CANCELLED, which our own stream.cancel() and Attempt.abandon() raise
 * on a healthy host.
 */
function hostFailure(err: Error): boolean {
  return isRecoverableError(err) && !(err instanceof GRPCCancelledError);
}

/**
 * Shuts one of our streams down without it counting as a failure of its host. etcd3
 * reports every error of a stream that is still writable to the pool (markFailed), which
 * then closes all of that host's gRPC clients (every call and watch stream on the
 * connection) and feeds the error to the host's breaker — and cancel() ends a stream with
 * a CANCELLED error. Half-closing first makes the stream non-writable, so the CANCELLED
 * that follows stays between us and the stream. (Cancelling a writable stream after every
 * keepAlive used to reset a host and open its breaker for 500 ms ten times a second, and
 * other calls waited out the open breakers: the "stalls" of up to several seconds.)
 */
function endStream(stream: IDuplexStream<unknown, unknown>): void {
  stream.end();
  stream.cancel();
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  private readonly retryWindowMs: number;
  private readonly inflight = new Set<Attempt>();
  /** The highest raft term seen in an answer (0: none yet). */
  private term = 0;
  /** Until when the election probe runs (a member was seen failing). */
  private probeUntil = 0;
  private probing = false;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;
  private readonly endpoints: string[];
  private readonly tls: { ca?: string; cert?: string; key?: string };

  /** Connects and checks that the cluster answers (UnavailableError if it does not). */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(opts);
    try {
      await store.revision();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  private constructor(opts: EtcdStoreOptions) {
    if (!opts.endpoints?.length) throw new InputError('no etcd endpoints given', 'store');
    this.callTimeoutMs = opts.callTimeoutMs ?? 2000;
    this.retryWindowMs = opts.retryWindowMs ?? 15_000;
    this.endpoints = opts.endpoints;
    const tls = (this.tls = opts.tls ?? {});
    const options: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: this.callTimeoutMs,
      faultHandling: {
        host: () =>
          circuitBreaker(handleWhen(hostFailure), {
            // 500 ms after a first failure; a member that keeps failing (a dead one) is
            // tried less and less often (up to every 4 s), so fewer calls wait on its dial.
            halfOpenAfter: new ExponentialBackoff({ initialDelay: 500, maxDelay: 4000 }),
            breaker: new ConsecutiveBreaker(1),
          }),
        global: noop,
      },
      grpcOptions: {
        // A whole-prefix list can exceed gRPC's 4 MB default.
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        // Notice a dead connection under a quiet watch stream.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
      },
    };
    if (tls.ca || tls.cert || tls.key) {
      options.credentials = {
        // null makes gRPC use the system roots.
        rootCertificate: (tls.ca ? readFileSync(tls.ca) : null) as Buffer,
        ...(tls.key ? { privateKey: readFileSync(tls.key) } : {}),
        ...(tls.cert ? { certChain: readFileSync(tls.cert) } : {}),
      };
    }
    this.client = new Etcd3(options);
  }

  /** Every member's own /health answer (the pool would hide one dead member behind the others). */
  async members(): Promise<StoreMember[]> {
    return Promise.all(this.endpoints.map((endpoint) => memberHealth(endpoint, this.tls, this.callTimeoutMs)));
  }

  /**
   * One call with per-attempt deadlines, retried through failover where that is safe.
   *
   * After a kill -9 of etcd's leader, a write that a follower had forwarded to it is lost:
   * nobody answers it, and it would wait out its whole deadline although etcd elects a new
   * leader within its election timeout (1–2 s by default). So once a new raft term shows
   * (in an answer's header, or a "leader changed" error), the attempts that were in flight
   * across the election are abandoned and sent again (or, for a txn or delete, reported as
   * UnavailableError with an unknown outcome, as after any deadline). While a member is seen
   * failing, a probe read notices the election the moment it happens.
   */
  private async call<T>(what: string, retry: Retry, fn: (o: CallOptions, a: Attempt) => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + this.retryWindowMs;
    let delay = 50;
    for (;;) {
      if (this.closed) throw new UnavailableError(`etcd ${what}: store is closed`);
      const attempt = new Attempt(Date.now() + this.callTimeoutMs);
      this.inflight.add(attempt);
      try {
        const res = await fn(attempt.options, attempt);
        this.answered(res, attempt.started);
        return res;
      } catch (err) {
        this.failed(err);
        const again = transient(err) && (retry === 'always' || notSent(err) || (retry === 'if-not-sent-or-abandoned' && attempt.abandoned));
        if (!again || Date.now() + delay > giveUpAt) throw mapError(err, what);
        await sleep(delay);
        delay = Math.min(delay * 2, 500);
      } finally {
        this.inflight.delete(attempt);
      }
    }
  }

  /** An answer to an attempt sent at `sent`: a higher raft term tells of an election. */
  private answered(res: unknown, sent: number): void {
    const term = Number((res as { header?: { raft_term?: string } } | undefined)?.header?.raft_term ?? 0);
    if (term <= this.term) return;
    if (this.term > 0) this.electionSeen(sent);
    this.term = term;
  }

  private failed(err: unknown): void {
    if (/leader changed/.test(String((err as Error)?.message))) this.electionSeen(Date.now());
    else if (memberFailure(err)) this.memberFailed();
  }

  /** Attempts sent before a new leader was elected may have been lost on the way to the old one. */
  private electionSeen(before: number): void {
    this.probeUntil = 0;
    for (const a of this.inflight) if (a.started < before) a.abandon();
  }

  /**
   * A member is gone (or has no leader): if it led, etcd elects another within its election
   * timeout. Until then one linearizable read at a time waits at a surviving member, which
   * answers "leader changed" the moment it learns of the new leader (or an answer comes
   * with a higher term): that is when what was in flight gets sent again.
   */
  private memberFailed(): void {
    this.probeUntil = Date.now() + PROBE_MS;
    if (this.probing) return;
    this.probing = true;
    void (async () => {
      try {
        while (!this.closed && Date.now() < this.probeUntil) {
          const a = new Attempt(this.probeUntil);
          try {
            this.answered(await this.client.kv.range({ key: Buffer.from([0]), count_only: true }, a.options), a.started);
            return; // a leader answered
          } catch (err) {
            if (/leader changed/.test(String((err as Error)?.message))) return this.electionSeen(Date.now());
            await sleep(50);
          }
        }
      } finally {
        this.probing = false;
      }
    })();
  }

  // ---- reads ----

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call('get', 'always', (o) => this.client.kv.range({ key: enc(key) }, o));
    return res.kvs.length ? toKv(res.kvs[0]) : undefined;
  }

  async list(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    const limit = opts.limit ?? 0;
    if (!Number.isInteger(limit) || limit < 0) throw new InputError('limit must be a non-negative integer', 'limit');
    const key = prefix === '' ? Buffer.from([0]) : enc(prefix);
    const res = await this.call('list', 'always', (o) =>
      this.client.kv.range({ key, range_end: prefixEnd(prefix), limit }, o),
    );
    return { kvs: res.kvs.map(toKv), revision: Number(res.header.revision) };
  }

  async revision(): Promise<number> {
    const res = await this.call('revision', 'always', (o) =>
      this.client.kv.range({ key: Buffer.from([0]), count_only: true }, o),
    );
    return Number(res.header.revision);
  }

  // ---- writes ----

  async put(key: string, value: string, opts: { lease?: number } = {}): Promise<number> {
    if (typeof key !== 'string' || key === '') throw new InputError('key must be a non-empty string', 'key');
    const res = await this.call('put', 'always', (o) =>
      this.client.kv.put({ key: enc(key), value: enc(value), lease: opts.lease ?? 0 }, o),
    );
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<boolean> {
    const res = await this.call('delete', 'if-not-sent', (o) => this.client.kv.deleteRange({ key: enc(key) }, o));
    return Number(res.deleted) > 0;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    const request = {
      compare: req.compare.map((c) => ({
        key: enc(c.key),
        target: 'Mod' as const,
        result: 'Equal' as const,
        mod_revision: c.modRevision,
      })),
      success: req.success.map((op) => toRequestOp(op, 'success')),
      failure: (req.failure ?? []).map((op) => toRequestOp(op, 'failure')),
    };
    // A txn that compares a key it also writes, with no failure branch, cannot apply twice:
    // once applied, its own compare fails. Such a txn abandoned across an election is sent
    // again; if that answers "compare failed", the first copy may have been applied (or
    // someone else's write was), so the outcome is unknown: UnavailableError, as after a deadline.
    const written = new Set(req.success.flatMap((op) => (op.type === 'deletePrefix' ? [] : [op.key])));
    const selfFencing = !req.failure?.length && req.compare.some((c) => written.has(c.key));
    let abandoned = false;
    const res = await this.call('txn', selfFencing ? 'if-not-sent-or-abandoned' : 'if-not-sent', async (o, a) => {
      try {
        return await this.client.kv.txn(request, o);
      } finally {
        abandoned ||= a.abandoned;
      }
    });
    if (abandoned && !res.succeeded) {
      throw new UnavailableError('etcd txn: sent again after an etcd leader election and its compare failed (the first copy may or may not have been applied; re-read)');
    }
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  /** Drops etcd's history up to `revision` (ops and tests; etcd's own --auto-compaction-* does this in production). */
  async compact(revision: number): Promise<void> {
    await this.call('compact', 'always', (o) => this.client.kv.compact({ revision, physical: true }, o));
  }

  // ---- watches ----

  async watch(prefix: string, opts: WatchOptions): Promise<Watch> {
    const after = opts.afterRevision;
    if (!Number.isInteger(after) || after < 0) {
      throw new InputError('afterRevision must be a non-negative integer', 'afterRevision');
    }
    const w = new EtcdWatch(this.client, prefix, opts, () => this.watches.delete(w), () => this.memberFailed());
    this.watches.add(w);
    try {
      await w.started(this.retryWindowMs);
    } catch (err) {
      await w.cancel();
      throw err;
    }
    return w;
  }

  // ---- leases ----

  async grantLease(ttlSeconds: number): Promise<number> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new InputError('lease ttl must be a positive whole number of seconds', 'ttl');
    }
    // We choose the id: etcd's own ids use all 64 bits and would not survive as a JS
    // number. A chosen id also makes a retried grant recognisable as our own.
    for (;;) {
      const id = randomInt(1, 2 ** 48);
      let sent = false;
      try {
        const res = await this.call('grantLease', 'always', async (o) => {
          try {
            return await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: id }, o);
          } finally {
            sent = true;
          }
        });
        if (res.error) throw new UnavailableError(`etcd grantLease failed: ${res.error}`);
        return Number(res.ID);
      } catch (err) {
        if (!/lease already exists/.test(String((err as Error).message))) throw err;
        // Either our own earlier attempt got through (then it is ours) or a rare clash.
        if (sent && (await this.leaseTtl(id)) !== undefined) return id;
      }
    }
  }

  private async leaseTtl(id: number): Promise<number | undefined> {
    const res = await this.call('leaseTimeToLive', 'always', (o) =>
      this.client.leaseClient.leaseTimeToLive({ ID: id }, o),
    );
    return Number(res.TTL) > 0 ? Number(res.grantedTTL) : undefined;
  }

  async keepAlive(lease: number): Promise<number> {
    const res = await this.call('keepAlive', 'always', (o, a) => this.keepAliveOnce(lease, o, a));
    // etcd answers TTL 0 for a lease that expired, was revoked or never existed.
    const ttl = Number(res.TTL);
    if (ttl <= 0) throw new NotFoundError(`lease ${lease} not found or expired`, 'lease');
    return ttl;
  }

  /**
   * One keep-alive round trip. etcd has no unary keep-alive, so this is one short
   * LeaseKeepAlive stream, used like a unary call (as etcd3's own Lease.keepaliveOnce
   * does): write the id, read the answer, half-close — etcd then ends the stream with OK.
   * The attempt's deadline bounds the stream; a stream that fails on its own (deadline,
   * dropped connection) is still reported to its host's breaker by etcd3, as a unary call
   * would be.
   */
  private async keepAliveOnce(lease: number, o: CallOptions, a: Attempt): Promise<ILeaseKeepAliveResponse> {
    const stream = await this.client.leaseClient.leaseKeepAlive(o);
    return new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
      let settled = false;
      a.onAbandon = () => {
        if (settled) return;
        settled = true;
        reject(new GRPCCancelledError('etcd keepAlive: abandoned: it was in flight across an etcd leader election'));
        endStream(stream);
      };
      stream.on('data', (r) => {
        if (settled) return;
        settled = true;
        resolve(r);
        stream.end();
      });
      stream.on('error', (err) => {
        if (settled) return;
        settled = true;
        // Typed like etcd3's unary errors, so call() can tell a transient one.
        reject(castGrpcError(err));
      });
      stream.on('end', () => {
        if (settled) return;
        settled = true;
        reject(new GRPCUnavailableError('etcd keepAlive: stream ended without an answer'));
        endStream(stream);
      });
      stream.write({ ID: lease });
    });
  }

  async revokeLease(lease: number): Promise<void> {
    let attempts = 0;
    try {
      await this.call('revokeLease', 'always', (o) => {
        attempts++;
        return this.client.leaseClient.leaseRevoke({ ID: lease }, o);
      });
    } catch (err) {
      // "not found" after an attempt whose answer was lost: that attempt did the revoke.
      if (err instanceof NotFoundError && attempts > 1) return;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.cancel()));
    this.client.close();
  }
}

function toRequestOp(op: Op, field: string): IRequestOp {
  switch (op.type) {
    case 'put':
      return { request_put: { key: enc(op.key), value: enc(op.value), lease: op.lease ?? 0 } };
    case 'delete':
      return { request_delete_range: { key: enc(op.key) } };
    case 'deletePrefix':
      return {
        request_delete_range: {
          key: op.prefix === '' ? Buffer.from([0]) : enc(op.prefix),
          range_end: prefixEnd(op.prefix),
          prev_kv: false,
        },
      };
    default:
      throw new InputError(`unknown op type ${(op as { type: unknown }).type}`, field);
  }
}

/**
 * One watch = one gRPC watch stream, re-created from the last delivered revision whenever
 * it breaks. It asks etcd to start AT that revision and drops what it already delivered:
 * etcd then refuses exactly when a revision > afterRevision is gone (start < compact
 * revision), the same boundary as the SQLite backend, instead of silently skipping a
 * delete that compaction removed at the boundary revision.
 */
class EtcdWatch implements Watch {
  private last: number;
  private stream?: IDuplexStream<IWatchRequest, IWatchResponse>;
  private closed = false;
  private timer?: NodeJS.Timeout;
  private backoff = 100;
  private onCreated?: () => void;
  private onStartError?: (err: Error) => void;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly opts: WatchOptions,
    private readonly forget: () => void,
    /** The stream broke as streams do when their member dies (see memberFailure). */
    private readonly onMemberFailure: () => void,
  ) {
    this.last = opts.afterRevision;
  }

  /** Resolves once etcd has created the watch (it may be retried until then). */
  started(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new UnavailableError('etcd watch: no member accepted the watch in time')), timeoutMs);
      this.onCreated = () => {
        clearTimeout(t);
        resolve();
      };
      this.onStartError = (err) => {
        clearTimeout(t);
        reject(err);
      };
      void this.connect();
    });
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    let stream: IDuplexStream<IWatchRequest, IWatchResponse>;
    try {
      stream = await this.client.watchClient.watch();
    } catch {
      this.reconnectLater();
      return;
    }
    if (this.closed) {
      endStream(stream);
      return;
    }
    this.stream = stream;
    stream.on('data', (res) => this.onResponse(stream, res));
    stream.on('error', (err) => {
      if (!this.closed && stream === this.stream && memberFailure(castGrpcError(err))) this.onMemberFailure();
      this.onBroken(stream);
    });
    stream.on('end', () => this.onBroken(stream));
    stream.write({
      create_request: {
        key: this.prefix === '' ? Buffer.from([0]) : enc(this.prefix),
        range_end: prefixEnd(this.prefix),
        start_revision: Math.max(1, this.last),
        prev_kv: true,
        progress_notify: true,
      },
    });
  }

  private onResponse(stream: IDuplexStream<IWatchRequest, IWatchResponse>, res: IWatchResponse): void {
    if (this.closed || stream !== this.stream) return;
    const compacted = Number(res.compact_revision);
    if (compacted > 0) return this.fail(new CompactedError(compacted));
    if (res.created && !res.canceled) {
      this.backoff = 100;
      this.onCreated?.();
      this.onCreated = undefined;
      this.onStartError = undefined;
    }
    if (res.canceled) {
      // A refusal at creation (bad request, permissions) will not get better by retrying.
      if (res.created && this.onStartError) return this.fail(new UnavailableError(`etcd watch refused: ${res.cancel_reason}`));
      return this.onBroken(stream); // e.g. the member lost its leader: resume elsewhere
    }
    if (res.events.length === 0) {
      // A progress notification: everything up to this revision has been sent.
      if (!res.created) this.last = Math.max(this.last, Number(res.header.revision));
      return;
    }
    let batch: WatchEvent[] = [];
    let batchRev = 0;
    const flush = (): boolean => {
      if (batch.length === 0 || batchRev <= this.last) return true;
      try {
        this.opts.onEvents(batch, batchRev);
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
        return false;
      }
      this.last = batchRev;
      return !this.closed;
    };
    for (const ev of res.events) {
      const kv = toKv(ev.kv);
      if (kv.modRevision !== batchRev) {
        if (!flush()) return;
        batch = [];
        batchRev = kv.modRevision;
      }
      const event: WatchEvent = { type: ev.type === 'Delete' ? 'delete' : 'put', kv };
      if (ev.prev_kv) event.prevKv = toKv(ev.prev_kv);
      batch.push(event);
    }
    flush();
  }

  private onBroken(stream: IDuplexStream<IWatchRequest, IWatchResponse>): void {
    if (this.closed || stream !== this.stream) return;
    this.stream = undefined;
    endStream(stream);
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => void this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 2000);
  }

  private fail(err: Error): void {
    if (this.closed) return;
    if (this.onStartError) {
      // Not started yet: the caller of watch() gets the error... unless it is compaction,
      // which, like in the SQLite backend, is reported through onError.
      if (!(err instanceof CompactedError)) {
        const reject = this.onStartError;
        void this.cancel();
        return reject(err);
      }
      this.onCreated?.();
    }
    void this.cancel();
    this.opts.onError(err);
  }

  async cancel(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.stream) endStream(this.stream);
    this.stream = undefined;
    this.forget();
  }
}

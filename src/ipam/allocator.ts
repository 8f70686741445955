/**
 * Allocation: a replica identity takes an address from its service's pools, then its
 * app's, then the global pools. Each claim is one compare-and-swap that creates both
 * /kiver/ips/<pool>/<ip> and /kiver/ip-owners/<service>/<ordinal> (each must not exist)
 * while the pool is unchanged, so no address can have two owners and no identity two
 * addresses, whatever runs concurrently on any server. What this process believes is
 * taken is only a hint that keeps retries few; the store decides.
 */
import type { Compare, Store } from '../store/store.js';
import { performance } from 'node:perf_hooks';
import { UnavailableError } from '../errors.js';
import { K } from '../model/keys.js';
import { DEFAULT_IP_GRACE_S, networkName, type AddressRecord, type Binding, type Pool, type ReplicaNetwork } from '../model/pool.js';
import { formatAddress, parseAddress, sizeOf, type Interval } from './address.js';
import { contains, space, tierFor } from './pool-spec.js';

export interface Owner {
  service: string;
  ordinal: number;
  serviceUid: string;
  app?: string;
  graceSeconds?: number;
  /** A user-pinned address for this ordinal (`--ip 0=10.1.0.5`). */
  pin?: string;
}

export type Allocation =
  | { ok: true; binding: Binding; pool: Pool; fresh?: true }
  | { ok: false; reason: string; tried: string[] };

interface PoolHint {
  uid: string;
  space: Interval[];
  size: bigint;
  /** Every address of a small pool, formatted once (picks then compare strings only). */
  all?: string[];
  used: Set<string>;
  inflight: Set<string>;
  loaded?: Promise<void>;
  /** Claims lost to another server since the last load: past a few, re-read what is taken. */
  conflicts: number;
}

const POOLS_TTL_MS = 1000;

/** Pools up to this size keep their address list in memory. */
const SMALL_POOL = 1 << 17;

/** How far one pick scans before giving up on a pool it believes full (an IPv6 /64 is never walked). */
const MAX_SCAN = 1 << 20;

export function replicaNetwork(pool: Pool, ip: string): ReplicaNetwork {
  return {
    pool: pool.name, network: networkName(pool.name), ip, family: pool.family, cidr: pool.cidr, driver: pool.driver,
    ...(pool.gateway ? { gateway: pool.gateway } : {}),
    ...(pool.parent ? { parent: pool.parent } : {}),
    ...(pool.vlan !== undefined ? { vlan: pool.vlan } : {}),
  };
}

export class Ipam {
  private readonly hints = new Map<string, PoolHint>();
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    /** The leader fence (controllers' writes); none for tests and benchmarks. */
    private readonly fence?: () => Compare | undefined,
    /** Claims in flight against the store at once; more callers queue (a burst must not swamp etcd past its deadlines). */
    private readonly maxInFlight = 16,
    /** Where the pools come from; default the store (re-read at most every second). */
    private readonly source?: () => { pool: Pool; modRevision: number }[],
  ) {}

  /** The pool list, re-read at most every POOLS_TTL_MS: a stale one only costs a retry (claims compare the pool's revision). */
  private pools?: { at: number; list: Promise<{ pool: Pool; modRevision: number }[]> };

  private fenced(compare: Compare[]): Compare[] {
    if (!this.fence) return compare;
    const f = this.fence();
    if (!f) throw new Error('not the leader; not allocating');
    return [...compare, f];
  }

  /** Every pool: from the caller's source (the controller's watch cache, current in revision order) or the store. */
  private async allPools(fresh: boolean): Promise<{ pool: Pool; modRevision: number }[]> {
    if (this.source) return this.source();
    if (fresh || !this.pools || performance.now() - this.pools.at > POOLS_TTL_MS) {
      const list = this.store.list(K.pools).then((res) => res.kvs.map((kv) => ({ pool: JSON.parse(kv.value) as Pool, modRevision: kv.modRevision })));
      this.pools = { at: performance.now(), list };
      list.catch(() => (this.pools = undefined));
    }
    return this.pools.list;
  }

  /** Pools that serve this owner, in allocation order: service, app, global (by name within a tier). */
  static order(pools: { pool: Pool; modRevision: number }[], owner: Pick<Owner, 'service' | 'app'>): { pool: Pool; modRevision: number }[] {
    return pools
      .map((e) => ({ ...e, tier: tierFor(e.pool, owner.service, owner.app) }))
      .filter((e): e is typeof e & { tier: number } => e.tier !== undefined)
      .sort((a, b) => a.tier - b.tier || (a.pool.name < b.pool.name ? -1 : 1))
      .map(({ pool, modRevision }) => ({ pool, modRevision }));
  }

  /**
   * The owner's address: the one it has (kept for life; a re-created service of the same
   * name takes it back), or a new one. undefined when no pool serves it (no fixed IP).
   */
  async ensure(owner: Owner): Promise<Allocation | undefined> {
    if (this.inFlight >= this.maxInFlight) await new Promise<void>((r) => this.queue.push(r));
    this.inFlight++;
    try {
      return await this.ensureNow(owner);
    } finally {
      this.inFlight--;
      this.queue.shift()?.();
    }
  }

  private async ensureNow(owner: Owner): Promise<Allocation | undefined> {
    // A store call that timed out may or may not have applied: the loop re-reads the owner key, which says.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.ensureOnce(owner);
      } catch (err) {
        if (!(err instanceof UnavailableError) || attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  }

  private async ensureOnce(owner: Owner): Promise<Allocation | undefined> {
    const key = K.ipOwner(owner.service, owner.ordinal);
    for (let attempt = 0; attempt < 20; attempt++) {
      const all = await this.allPools(attempt > 0);
      if (all.length === 0) return undefined; // no pools at all: no fixed IPs, and no store read per placement
      const cur = await this.store.get(key);
      if (cur) {
        const b = JSON.parse(cur.value) as Binding;
        const pool = await this.store.get(K.pool(b.pool));
        if (!pool) return { ok: false, reason: `its address ${b.ip} belongs to pool ${b.pool}, which no longer exists`, tried: [b.pool] };
        const grace = owner.graceSeconds ?? DEFAULT_IP_GRACE_S;
        if (b.releasedAt === undefined && b.serviceUid === owner.serviceUid && b.graceSeconds === grace) {
          return { ok: true, binding: b, pool: JSON.parse(pool.value) as Pool };
        }
        const { releasedAt: _r, ...kept } = b;
        const next: Binding = { ...kept, serviceUid: owner.serviceUid, graceSeconds: grace };
        const res = await this.store.txn({ compare: this.fenced([{ key, modRevision: cur.modRevision }]), success: [{ type: 'put', key, value: JSON.stringify(next) }] });
        if (res.succeeded) return { ok: true, binding: next, pool: JSON.parse(pool.value) as Pool };
        continue;
      }
      const pools = Ipam.order(all, owner);
      if (pools.length === 0) return undefined;
      const tried: string[] = [];
      let raced = false;
      for (const { pool, modRevision } of pools) {
        if (owner.pin && !contains(pool, owner.pin)) continue;
        tried.push(pool.name);
        const r = await this.claimIn(pool, modRevision, owner);
        if (r === 'raced') {
          raced = true;
          break;
        }
        if (r !== 'full') return { ok: true, binding: r, pool, fresh: true };
      }
      if (raced) continue;
      if (owner.pin) {
        return tried.length === 0
          ? { ok: false, reason: `pinned address ${owner.pin} is in none of the pools that serve ${owner.service} (${pools.map((p) => p.pool.name).join(', ')})`, tried: pools.map((p) => p.pool.name) }
          : { ok: false, reason: `pinned address ${owner.pin} is taken (pool ${tried[0]})`, tried };
      }
      return { ok: false, reason: `no free address in pools ${tried.join(', ')} (tried in order: service, app, global)`, tried };
    }
    return { ok: false, reason: 'address allocation kept conflicting; will retry', tried: [] };
  }

  private hint(pool: Pool): PoolHint {
    let h = this.hints.get(pool.name);
    if (!h || h.uid !== pool.uid) {
      const sp = space(pool);
      const size = sizeOf(sp);
      h = { uid: pool.uid, space: sp, size, used: new Set(), inflight: new Set(), conflicts: 0 };
      if (size <= BigInt(SMALL_POOL)) h.all = sp.flatMap((iv) => Array.from({ length: Number(iv.hi - iv.lo + 1n) }, (_, i) => formatAddress(pool.family, iv.lo + BigInt(i))));
      this.hints.set(pool.name, h);
    }
    return h;
  }

  private load(pool: Pool, h: PoolHint, again = false): Promise<void> {
    if (!h.loaded || again) {
      h.conflicts = 0;
      h.loaded = this.store.list(K.ipsOf(pool.name)).then((res) => {
        h.used = new Set(res.kvs.map((kv) => kv.key.slice(K.ipsOf(pool.name).length)));
      });
      h.loaded.catch(() => (h.loaded = undefined));
    }
    return h.loaded;
  }

  /** A free-looking address from a random start (spreads concurrent claimers), or undefined. */
  private pick(pool: Pool, h: PoolHint): string | undefined {
    if (h.all) {
      const n = h.all.length;
      const start = Math.floor(Math.random() * n);
      for (let k = 0; k < n; k++) {
        const ip = h.all[(start + k) % n];
        if (!h.used.has(ip) && !h.inflight.has(ip)) return ip;
      }
      return undefined;
    }
    const total = h.size;
    let start = randomBelow(total);
    let scanned = 0;
    // Walk the intervals from `start`, wrapping once.
    for (let pass = 0; pass < 2; pass++) {
      let base = 0n;
      for (const iv of h.space) {
        const n = iv.hi - iv.lo + 1n;
        if (start >= base + n) {
          base += n;
          continue;
        }
        for (let v = iv.lo + (start > base ? start - base : 0n); v <= iv.hi; v++) {
          const ip = formatAddress(pool.family, v);
          if (!h.used.has(ip) && !h.inflight.has(ip)) return ip;
          if (++scanned >= MAX_SCAN || BigInt(scanned) >= total) return undefined;
        }
        base += n;
      }
      start = 0n;
    }
    return undefined;
  }

  /** One pool: a binding, 'full', or 'raced' (the owner got an address meanwhile, or the pool changed). */
  private async claimIn(pool: Pool, poolMod: number, owner: Owner): Promise<Binding | 'full' | 'raced'> {
    const h = this.hint(pool);
    await this.load(pool, h);
    let reloaded = false;
    for (;;) {
      const ip = owner.pin ? canonicalIn(pool, owner.pin) : this.pick(pool, h);
      if (ip === undefined || (owner.pin && h.used.has(ip) && reloaded)) {
        if (reloaded) return 'full';
        await this.load(pool, h, true);
        reloaded = true;
        continue;
      }
      const now = new Date().toISOString();
      const binding: Binding = {
        service: owner.service, ordinal: owner.ordinal, serviceUid: owner.serviceUid, pool: pool.name, ip, at: now,
        graceSeconds: owner.graceSeconds ?? DEFAULT_IP_GRACE_S,
      };
      const ownerKey = K.ipOwner(owner.service, owner.ordinal);
      h.inflight.add(ip);
      let ok: boolean;
      try {
        ok = (await this.store.txn({
          compare: this.fenced([{ key: K.ip(pool.name, ip), modRevision: 0 }, { key: ownerKey, modRevision: 0 }, { key: K.pool(pool.name), modRevision: poolMod }]),
          success: [
            { type: 'put', key: K.ip(pool.name, ip), value: JSON.stringify({ owner: `${owner.service}/${owner.ordinal}`, at: now } satisfies AddressRecord) },
            { type: 'put', key: ownerKey, value: JSON.stringify(binding) },
            { type: 'put', key: K.poolUse(pool.name), value: now },
          ],
        })).succeeded;
      } finally {
        h.inflight.delete(ip);
      }
      if (ok) {
        h.used.add(ip);
        return binding;
      }
      const [own, p] = await Promise.all([this.store.get(ownerKey), this.store.get(K.pool(pool.name))]);
      if (own || p?.modRevision !== poolMod) return 'raced';
      h.used.add(ip);
      if (++h.conflicts > 32) await this.load(pool, h, true);
      if (owner.pin) return 'full';
    }
  }

  /** Forget a freed address in this process's hint (the store has already freed it). */
  forget(pool: string, ip: string): void {
    this.hints.get(pool)?.used.delete(ip);
  }
}

function canonicalIn(pool: Pool, ip: string): string | undefined {
  const a = parseAddress(ip);
  return a && contains(pool, ip) ? formatAddress(a.family, a.value) : undefined;
}

function randomBelow(n: bigint): bigint {
  if (n <= 0n) return 0n;
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return BigInt(Math.floor(Math.random() * Number(n)));
  let r = 0n;
  for (let i = 0; i < 4; i++) r = (r << 32n) | BigInt(Math.floor(Math.random() * 2 ** 32));
  return r % n;
}

/**
 * What every allocated address is doing, from the store alone: its binding, whether its
 * owner (service/ordinal) still exists, and which nodes' agents report a container
 * holding it. An address is freed only when its owner is gone (past the grace) AND no
 * registered node reports holding it — a partitioned node's last report keeps the
 * address taken until that node reports again or is removed, so the address can never
 * be handed to a second replica while the first may still run (whereabouts#176 and
 * spiderpool#2526 freed by name while the old owner lived).
 */
import type { Compare, KeyValue, Store } from '../store/store.js';
import { K } from '../model/keys.js';
import type { AddressRecord, AuditRow, AuditView, Binding, HolderReport, Pool } from '../model/pool.js';
import type { Service } from '../model/service.js';
import type { Replica } from '../model/replica.js';
import { contains } from './pool-spec.js';

/** A leaked address and the revisions its release must compare. */
export interface Leak {
  pool: string;
  ip: string;
  ipKey: KeyValue;
  ownerKey?: KeyValue;
}

export interface Audit {
  view: AuditView;
  leaks: Leak[];
  /** Bindings whose owner is gone and that carry no releasedAt yet: the grace starts now. */
  toRelease: KeyValue[];
}

/** Reads every key audit needs (one list per prefix). */
async function snapshot(store: Store) {
  const [pools, ips, owners, holders, nodes, alives, services, replicas] = await Promise.all(
    [K.pools, K.ips, K.ipOwners, K.ipHolderReports, K.nodes, K.alives, K.services, K.replicas].map((p) => store.list(p)),
  );
  return { pools, ips, owners, holders, nodes, alives, services, replicas };
}

export async function auditPools(store: Store, only?: string, now = Date.now()): Promise<Audit> {
  const s = await snapshot(store);
  const pools = s.pools.kvs.map((kv) => JSON.parse(kv.value) as Pool);
  const nodes = new Set(s.nodes.kvs.map((kv) => kv.key.slice(K.nodes.length)));
  const alive = new Set(s.alives.kvs.map((kv) => kv.key.slice(K.alives.length)));
  const services = new Map(s.services.kvs.map((kv) => [kv.key.slice(K.services.length), JSON.parse(kv.value) as Service]));
  const replicas = new Set(s.replicas.kvs.map((kv) => {
    const r = JSON.parse(kv.value) as Replica;
    return `${r.service}/${r.ordinal}`;
  }));
  const owners = new Map(s.owners.kvs.map((kv) => [kv.key.slice(K.ipOwners.length), kv]));
  // Only registered nodes count; a node's last report stands until it reports again.
  const heldBy = new Map<string, string[]>();
  for (const kv of s.holders.kvs) {
    const r = JSON.parse(kv.value) as HolderReport;
    if (!nodes.has(r.node)) continue;
    for (const ip of r.addresses) heldBy.set(ip, [...(heldBy.get(ip) ?? []), r.node]);
  }
  const ownerLives = (owner: string): boolean => {
    if (replicas.has(owner)) return true;
    const [svc, ord] = owner.split('/');
    const sv = services.get(svc);
    return sv !== undefined && !sv.deleting && sv.spec.replicas > Number(ord);
  };

  const rows: AuditRow[] = [];
  const leaks: Leak[] = [];
  const toRelease: KeyValue[] = [];
  const allocated = new Set<string>();
  for (const kv of s.ips.kvs) {
    const [pool, ip] = kv.key.slice(K.ips.length).split('/');
    allocated.add(`${pool}/${ip}`);
    if (only && pool !== only) continue;
    const rec = JSON.parse(kv.value) as AddressRecord;
    const ownerKv = owners.get(rec.owner);
    const b = ownerKv ? (JSON.parse(ownerKv.value) as Binding) : undefined;
    const bound = b !== undefined && b.pool === pool && b.ip === ip;
    const holders = heldBy.get(ip) ?? [];
    const liveHolders = holders.filter((n) => alive.has(n));
    const row: AuditRow = { pool, ip, owner: rec.owner, state: 'allocated', holders };
    if (liveHolders.length > 1) {
      row.state = 'conflicting';
      row.note = `live on ${liveHolders.join(' and ')}`;
    } else if (!bound) {
      row.state = holders.length ? 'in-use' : 'leaked';
      row.note = 'no binding points at it';
      if (!holders.length) leaks.push({ pool, ip, ipKey: kv });
    } else if (!ownerLives(rec.owner)) {
      const since = b.releasedAt ? Date.parse(b.releasedAt) : now;
      if (!b.releasedAt) toRelease.push(ownerKv!);
      const left = Math.max(0, Math.ceil((since + b.graceSeconds * 1000 - now) / 1000));
      if (holders.length) {
        row.state = 'released';
        row.note = `owner gone; still held by ${holders.join(', ')}${liveHolders.length < holders.length ? ' (not reporting: kept until it reports or is removed)' : ''}`;
      } else if (left > 0) {
        row.state = 'released';
        row.note = `owner gone; freed in ${left}s unless ${rec.owner} comes back`;
      } else {
        row.state = 'leaked';
        row.note = 'owner gone, grace over, no node holds it';
        leaks.push({ pool, ip, ipKey: kv, ownerKey: ownerKv });
      }
    } else if (holders.length) row.state = 'in-use';
    rows.push(row);
  }
  // Addresses of a pool a node reports holding without any allocation: someone set them by hand.
  for (const [ip, holders] of heldBy) {
    for (const p of pools) {
      if ((only && p.name !== only) || allocated.has(`${p.name}/${ip}`) || !contains(p, ip)) continue;
      rows.push({ pool: p.name, ip, owner: '-', state: 'conflicting', holders, note: 'held without an allocation' });
    }
  }
  const count = (st: AuditRow['state']) => rows.filter((r) => r.state === st).length;
  return {
    view: { allocated: s.ips.kvs.filter((kv) => !only || kv.key.startsWith(K.ipsOf(only))).length, inUse: count('in-use'), leaked: count('leaked'), conflicting: count('conflicting'), reclaimed: 0, rows },
    leaks,
    toRelease,
  };
}

/** Runs fn over items, at most `width` at once (each is its own transaction). */
async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** Frees leaked addresses, each by a compare-and-swap on what the audit read; returns those freed. */
export async function freeLeaks(store: Store, leaks: Leak[], fence?: Compare): Promise<Leak[]> {
  const freed: Leak[] = [];
  await inParallel(leaks, 32, async (l) => {
    const compare: Compare[] = [{ key: l.ipKey.key, modRevision: l.ipKey.modRevision }, ...(fence ? [fence] : [])];
    const ops = [{ type: 'delete' as const, key: l.ipKey.key }];
    if (l.ownerKey) {
      compare.push({ key: l.ownerKey.key, modRevision: l.ownerKey.modRevision });
      ops.push({ type: 'delete', key: l.ownerKey.key });
    }
    if ((await store.txn({ compare, success: ops })).succeeded) freed.push(l);
  });
  return freed;
}

/** Starts the grace of bindings whose owner is gone (releasedAt = now), by CAS. */
export async function markReleased(store: Store, owners: KeyValue[], fence?: Compare): Promise<void> {
  const at = new Date().toISOString();
  await inParallel(owners, 32, async (kv) => {
    const b = JSON.parse(kv.value) as Binding;
    await store.txn({
      compare: [{ key: kv.key, modRevision: kv.modRevision }, ...(fence ? [fence] : [])],
      success: [{ type: 'put', key: kv.key, value: JSON.stringify({ ...b, releasedAt: at }) }],
    });
  });
}

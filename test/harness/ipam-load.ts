/**
 * Many concurrent allocations against one pool, through several allocators (each its own
 * store client, as separate servers would be), and the check that matters: every address
 * distinct, none lost (each claim is in the store, both ways), and the pool then full.
 */
import { performance } from 'node:perf_hooks';
import type { Store } from '../../src/store/store.js';
import { K } from '../../src/model/keys.js';
import type { AddressRecord, Binding } from '../../src/model/pool.js';
import { Ipam } from '../../src/ipam/allocator.js';
import { createPool } from '../../src/ipam/pools.js';
import { formatAddress, parseAddress } from '../../src/ipam/address.js';

export interface LoadResult {
  n: number;
  ok: number;
  failed: string[];
  duplicates: number;
  /** Claims that returned an address the store does not hold for that owner. */
  lost: number;
  seconds: number;
  p50ms: number;
  p99ms: number;
  /** With exact: one more claim after the pool was full, refused. */
  overflowRefused?: boolean;
}

/**
 * Claims n addresses at once through `stores` in turn, from a new pool `name`: a /16
 * (65,533 addresses), or with exact a pool of exactly n (then also checks that one more
 * is refused). Near-full pools make concurrent allocators chase the same last addresses.
 */
export async function concurrentClaims(stores: Store[], name: string, n: number, opts: { exact?: boolean; maxInFlight?: number } = {}): Promise<LoadResult> {
  const service = name;
  const first = parseAddress('10.64.0.2')!.value;
  await createPool(stores[0], opts.exact
    ? { name, cidr: '10.64.0.0/11', ranges: [`${formatAddress(4, first)}-${formatAddress(4, first + BigInt(n - 1))}`], scope: { service } }
    : { name, cidr: '10.128.0.0/16', scope: { service } });
  const ipams = stores.map((s) => new Ipam(s, undefined, opts.maxInFlight));
  const lat: number[] = [];
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const t = performance.now();
    const r = await ipams[i % ipams.length].ensure({ service, ordinal: i, serviceUid: 'u' });
    lat.push(performance.now() - t);
    return r;
  }));
  const seconds = (performance.now() - t0) / 1000;
  const failed = res.flatMap((r, i) => (r?.ok ? [] : [`${i}: ${r?.ok === false ? r.reason : 'no pool'}`]));
  const ips = res.flatMap((r) => (r?.ok ? [r.binding.ip] : []));
  // What the store holds, both ways.
  const [addrs, owners] = await Promise.all([stores[0].list(K.ipsOf(name)), stores[0].list(`${K.ipOwners}${service}/`)]);
  const byIp = new Map(addrs.kvs.map((kv) => [kv.key.slice(K.ipsOf(name).length), (JSON.parse(kv.value) as AddressRecord).owner]));
  const byOwner = new Map(owners.kvs.map((kv) => [kv.key.slice(K.ipOwners.length), (JSON.parse(kv.value) as Binding).ip]));
  let lost = 0;
  res.forEach((r, i) => {
    if (!r?.ok) return;
    if (byIp.get(r.binding.ip) !== `${service}/${i}` || byOwner.get(`${service}/${i}`) !== r.binding.ip) lost++;
  });
  const over = opts.exact ? await ipams[0].ensure({ service, ordinal: n, serviceUid: 'u' }) : undefined;
  lat.sort((a, b) => a - b);
  return {
    n, ok: ips.length, failed, duplicates: ips.length - new Set(ips).size, lost, seconds,
    p50ms: lat[Math.floor(lat.length * 0.5)], p99ms: lat[Math.floor(lat.length * 0.99)],
    ...(opts.exact ? { overflowRefused: over?.ok === false && byIp.size === n } : {}),
  };
}

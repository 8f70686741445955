/**
 * Address arithmetic for pools, pure: IPv4 and IPv6 addresses as bigints, CIDRs, A-B
 * ranges, and a pool's address space as sorted disjoint intervals (ranges minus
 * excludes minus the gateway and the reserved ends). Parsing is ipaddr.js's.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address (host bits zero). */
  base: bigint;
  prefix: number;
  /** Last address of the block. */
  last: bigint;
}

/** An inclusive interval of addresses. */
export interface Interval {
  lo: bigint;
  hi: bigint;
}

const bits = (f: Family) => (f === 4 ? 32 : 128);

/** A textual address → [family, value]; undefined when it is not an address (zone ids and IPv4-in-6 forms refused). */
export function parseAddress(s: string): { family: Family; value: bigint } | undefined {
  if (typeof s !== 'string' || s.includes('%')) return undefined;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) {
    const b = ipaddr.IPv4.parse(s).toByteArray();
    return { family: 4, value: b.reduce((a, x) => (a << 8n) | BigInt(x), 0n) };
  }
  if (ipaddr.IPv6.isValid(s) && !s.includes('.')) {
    const b = ipaddr.IPv6.parse(s).toByteArray();
    return { family: 6, value: b.reduce((a, x) => (a << 8n) | BigInt(x), 0n) };
  }
  return undefined;
}

/** The canonical text of an address (IPv6 compressed, lower case): the one form used in keys. */
export function formatAddress(family: Family, v: bigint): string {
  const n = family === 4 ? 4 : 16;
  const bytes: number[] = [];
  for (let i = n - 1; i >= 0; i--) bytes.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

/** Canonical form of a textual address, or undefined. */
export function canonical(s: string): string | undefined {
  const a = parseAddress(s);
  return a ? formatAddress(a.family, a.value) : undefined;
}

/** "10.1.0.0/24" or "fd00:1::/64"; host bits must be zero (a typo'd CIDR is refused, not rounded). */
export function parseCidr(s: string): Cidr | string {
  const i = typeof s === 'string' ? s.indexOf('/') : -1;
  if (i < 0) return 'expected ADDRESS/PREFIX, e.g. 10.1.0.0/24 or fd00::/64';
  const a = parseAddress(s.slice(0, i));
  const p = s.slice(i + 1);
  if (!a) return `${JSON.stringify(s.slice(0, i))} is not an IPv4 or IPv6 address`;
  const max = bits(a.family);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `prefix must be 0-${max}`;
  const prefix = Number(p);
  const hostBits = BigInt(max - prefix);
  const mask = (1n << hostBits) - 1n;
  if ((a.value & mask) !== 0n) return `host bits are set; did you mean ${formatAddress(a.family, a.value & ~mask)}/${prefix}?`;
  return { family: a.family, base: a.value, prefix, last: a.value | mask };
}

export function cidrText(c: Cidr): string {
  return `${formatAddress(c.family, c.base)}/${c.prefix}`;
}

export function overlaps(a: Interval, b: Interval): boolean {
  return a.lo <= b.hi && b.lo <= a.hi;
}

/** "A-B" (or a single address "A") of the given family → an interval; a string says what is wrong. */
export function parseRange(s: string, family: Family): Interval | string {
  const parts = typeof s === 'string' ? s.split('-') : [];
  if (parts.length < 1 || parts.length > 2) return 'expected FIRST-LAST, e.g. 10.1.0.10-10.1.0.99';
  const ends = parts.map((p) => parseAddress(p.trim()));
  if (ends.some((e) => !e)) return `${JSON.stringify(s)} is not an address range FIRST-LAST`;
  if (ends.some((e) => e!.family !== family)) return `${JSON.stringify(s)} is not IPv${family} like the CIDR`;
  const lo = ends[0]!.value;
  const hi = ends[ends.length - 1]!.value;
  if (hi < lo) return `${JSON.stringify(s)}: last address is below the first`;
  return { lo, hi };
}

/** Sorted disjoint intervals of `include` minus every interval of `exclude`. */
export function subtract(include: Interval[], exclude: Interval[]): Interval[] {
  let cur = normalize(include);
  for (const x of exclude) {
    const next: Interval[] = [];
    for (const iv of cur) {
      if (!overlaps(iv, x)) {
        next.push(iv);
        continue;
      }
      if (iv.lo < x.lo) next.push({ lo: iv.lo, hi: x.lo - 1n });
      if (iv.hi > x.hi) next.push({ lo: x.hi + 1n, hi: iv.hi });
    }
    cur = next;
  }
  return cur;
}

/** Sorts and merges overlapping or touching intervals. */
export function normalize(ivs: Interval[]): Interval[] {
  const s = [...ivs].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of s) {
    const last = out[out.length - 1];
    if (last && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) last.hi = iv.hi;
    } else out.push({ ...iv });
  }
  return out;
}

export function sizeOf(ivs: Interval[]): bigint {
  return ivs.reduce((n, iv) => n + (iv.hi - iv.lo + 1n), 0n);
}

/** The index-th address of the space (0-based). */
export function nth(ivs: Interval[], index: bigint): bigint {
  let i = index;
  for (const iv of ivs) {
    const n = iv.hi - iv.lo + 1n;
    if (i < n) return iv.lo + i;
    i -= n;
  }
  throw new RangeError('index outside the address space');
}

/** The position of an address in the space, or -1n when it is not in it. */
export function indexOf(ivs: Interval[], v: bigint): bigint {
  let base = 0n;
  for (const iv of ivs) {
    if (v >= iv.lo && v <= iv.hi) return base + (v - iv.lo);
    base += iv.hi - iv.lo + 1n;
  }
  return -1n;
}

/**
 * The addresses a CIDR can hand out: IPv4 drops the network and broadcast addresses
 * (unless the block is a /31 or /32); IPv6 drops the subnet-router anycast address.
 */
export function usable(c: Cidr): Interval {
  const max = bits(c.family);
  if (c.family === 4 && max - c.prefix >= 2) return { lo: c.base + 1n, hi: c.last - 1n };
  if (c.family === 6 && c.prefix < 128) return { lo: c.base + 1n, hi: c.last };
  return { lo: c.base, hi: c.last };
}

/** A pool request checked and turned into what is stored, and a pool's address space; pure. */
import { randomUUID } from 'node:crypto';
import { InputError } from '../errors.js';
import type { Pool, PoolCreate } from '../model/pool.js';
import {
  canonical, cidrText, formatAddress, normalize, overlaps, parseAddress, parseCidr, parseRange, subtract, usable,
  type Cidr, type Interval,
} from './address.js';

function bad(field: string, message: string): never {
  throw new InputError(`${field}: ${message}`, field);
}

/** Checks every field the schema cannot (CIDR, ranges and gateway inside it, VLAN) and fills defaults. */
export function compilePool(c: PoolCreate, now = new Date()): Pool {
  const cidr = parseCidr(c.cidr);
  if (typeof cidr === 'string') bad('cidr', cidr);
  const inCidr = (iv: Interval) => iv.lo >= cidr.base && iv.hi <= cidr.last;
  const ranges = (c.ranges ?? []).map((r, i) => {
    const iv = parseRange(r, cidr.family);
    if (typeof iv === 'string') bad(`ranges/${i}`, iv);
    if (!inCidr(iv)) bad(`ranges/${i}`, `${r} is outside ${cidrText(cidr)}`);
    return iv;
  });
  const excludes = (c.excludes ?? []).map((r, i) => {
    const iv = parseRange(r, cidr.family);
    if (typeof iv === 'string') bad(`excludes/${i}`, iv);
    if (!inCidr(iv)) bad(`excludes/${i}`, `${r} is outside ${cidrText(cidr)}`);
    return iv;
  });
  let gateway: string | undefined;
  if (c.gateway !== undefined) {
    const g = parseAddress(c.gateway);
    if (!g || g.family !== cidr.family) bad('gateway', `${JSON.stringify(c.gateway)} is not an IPv${cidr.family} address`);
    if (g.value < cidr.base || g.value > cidr.last) bad('gateway', `${c.gateway} is outside ${cidrText(cidr)}`);
    gateway = formatAddress(cidr.family, g.value);
  } else {
    // Docker gives every network a gateway (the host's side of a bridge) and reserves it:
    // without one given, it is the first usable address, and never handed out.
    gateway = formatAddress(cidr.family, usable(cidr).lo);
  }
  if (c.vlan !== undefined && (c.vlan < 1 || c.vlan > 4094)) bad('vlan', `must be 1-4094, got ${c.vlan}`);
  if (c.vlan !== undefined && !c.parent) bad('vlan', 'a VLAN needs --parent (the interface that carries it)');
  const driver = c.driver ?? (c.parent ? 'macvlan' : 'bridge');
  if (driver !== 'bridge' && !c.parent) bad('parent', `driver ${driver} needs the parent interface`);
  if (driver === 'bridge' && c.parent) bad('driver', 'a bridge pool has no parent interface; use macvlan or ipvlan with --parent');
  const fmt = (iv: Interval) => (iv.lo === iv.hi ? formatAddress(cidr.family, iv.lo) : `${formatAddress(cidr.family, iv.lo)}-${formatAddress(cidr.family, iv.hi)}`);
  const pool: Pool = {
    name: c.name,
    uid: randomUUID(),
    family: cidr.family,
    cidr: cidrText(cidr),
    ranges: ranges.map(fmt),
    excludes: excludes.map(fmt),
    driver,
    scope: c.scope,
    createdAt: now.toISOString(),
    ...(gateway ? { gateway } : {}),
    ...(c.vlan !== undefined ? { vlan: c.vlan } : {}),
    ...(c.parent ? { parent: c.parent } : {}),
  };
  if (space(pool).length === 0) bad(c.ranges?.length ? 'ranges' : 'cidr', 'leaves no address to hand out (after the excludes and the gateway)');
  return pool;
}

function cidrOf(p: Pool): Cidr {
  return parseCidr(p.cidr) as Cidr;
}

/** The addresses a stored pool hands out, as sorted disjoint intervals. */
export function space(p: Pool): Interval[] {
  const c = cidrOf(p);
  const use = usable(c);
  const inc = p.ranges.length ? p.ranges.map((r) => parseRange(r, c.family) as Interval) : [use];
  const exc = p.excludes.map((r) => parseRange(r, c.family) as Interval);
  if (p.gateway) {
    const g = parseAddress(p.gateway)!.value;
    exc.push({ lo: g, hi: g });
  }
  // The network/broadcast ends stay out even when a range names them.
  return subtract(normalize(inc).map((iv) => ({ lo: iv.lo < use.lo ? use.lo : iv.lo, hi: iv.hi > use.hi ? use.hi : iv.hi })).filter((iv) => iv.lo <= iv.hi), exc);
}

/** The first existing pool whose CIDR overlaps this one's, if any. */
export function overlapping(p: Pool, others: Pool[]): Pool | undefined {
  const a = cidrOf(p);
  return others.find((o) => {
    const b = cidrOf(o);
    return o.name !== p.name && a.family === b.family && overlaps({ lo: a.base, hi: a.last }, { lo: b.base, hi: b.last });
  });
}

/** Whether the pool hands out this address (canonical text). */
export function contains(p: Pool, ip: string): boolean {
  const a = parseAddress(ip);
  if (!a || a.family !== p.family) return false;
  return space(p).some((iv) => a.value >= iv.lo && a.value <= iv.hi);
}

export { canonical };

/** Whether the pool serves this service (its own pools, its app's, or global), and in which tier (0 first). */
export function tierFor(p: Pool, service: string, app: string | undefined): number | undefined {
  if ('service' in p.scope) return p.scope.service === service ? 0 : undefined;
  if ('app' in p.scope) return app !== undefined && p.scope.app === app ? 1 : undefined;
  return 2;
}

export function scopeText(p: Pool): string {
  return 'service' in p.scope ? `service ${p.scope.service}` : 'app' in p.scope ? `app ${p.scope.app}` : 'global';
}

/** IP pools and address bindings: the wire shapes and what is stored (see src/ipam/). */
import { Type, type Static } from '@sinclair/typebox';
import { NODE_NAME, SERVICE_NAME } from './names.js';

/** Pool and app names follow service names (DNS labels). */
export const POOL_NAME = SERVICE_NAME;
export const APP_NAME = SERVICE_NAME;
/** Linux interface names: at most 15 bytes, no slash or space (a VLAN sub-interface adds ".<id>"). */
export const IFACE_NAME = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$';
export const MAX_RANGES = 64;

export const PoolDriver = Type.Union([Type.Literal('bridge'), Type.Literal('macvlan'), Type.Literal('ipvlan')], {
  description: 'bridge: one machine (default without --parent); macvlan (default with --parent) or ipvlan (L2) on the parent interface',
});
export type PoolDriver = Static<typeof PoolDriver>;

export const PoolScope = Type.Union([
  Type.Object({ service: Type.String({ pattern: SERVICE_NAME }) }, { additionalProperties: false }),
  Type.Object({ app: Type.String({ pattern: APP_NAME }) }, { additionalProperties: false }),
  Type.Object({ global: Type.Literal(true) }, { additionalProperties: false }),
], { description: 'who draws from the pool: one service, every service of one app, or anyone (global, the fallback)' });
export type PoolScope = Static<typeof PoolScope>;

export const PoolCreate = Type.Object(
  {
    name: Type.String({ pattern: POOL_NAME }),
    cidr: Type.String({ maxLength: 64, description: 'e.g. 10.1.0.0/24 or fd00:1::/64' }),
    ranges: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: MAX_RANGES, description: 'FIRST-LAST; default the whole CIDR' })),
    excludes: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: MAX_RANGES })),
    gateway: Type.Optional(Type.String({ maxLength: 64 })),
    vlan: Type.Optional(Type.Integer({ description: '802.1Q id, 1-4094: the agent uses the sub-interface <parent>.<vlan>' })),
    parent: Type.Optional(Type.String({ pattern: IFACE_NAME, description: "the node's interface on the pool's L2 segment" })),
    driver: Type.Optional(PoolDriver),
    scope: PoolScope,
  },
  { additionalProperties: false },
);
export type PoolCreate = Static<typeof PoolCreate>;

/** Stored at /kiver/pools/<name>. */
export const PoolSpec = Type.Object({
  name: Type.String(),
  uid: Type.String(),
  family: Type.Union([Type.Literal(4), Type.Literal(6)]),
  cidr: Type.String(),
  ranges: Type.Array(Type.String()),
  excludes: Type.Array(Type.String()),
  gateway: Type.Optional(Type.String()),
  vlan: Type.Optional(Type.Integer()),
  parent: Type.Optional(Type.String()),
  driver: PoolDriver,
  scope: PoolScope,
  createdAt: Type.String(),
});
export type Pool = Static<typeof PoolSpec>;

export const PoolView = Type.Object({
  ...PoolSpec.properties,
  size: Type.String({ description: 'addresses the pool can hand out (a decimal string: IPv6 pools are huge)' }),
  allocated: Type.Integer(),
});
export type PoolView = Static<typeof PoolView>;

/** What a container needs to join its pool's network: carried in the replica's ContainerSpec. */
export interface ReplicaNetwork {
  pool: string;
  /** Docker network name on every node: kiver-<pool>. */
  network: string;
  ip: string;
  family: 4 | 6;
  cidr: string;
  gateway?: string;
  driver: PoolDriver;
  parent?: string;
  vlan?: number;
}

/**
 * Stored at /kiver/ip-owners/<service>/<ordinal>: the replica identity's address.
 * Written together with /kiver/ips/<pool>/<ip> in one compare-and-swap, so neither an
 * address nor an identity can ever have two.
 */
export interface Binding {
  service: string;
  ordinal: number;
  /** The service incarnation that last claimed it (a re-created service of the same name reclaims it within the grace). */
  serviceUid: string;
  pool: string;
  ip: string;
  at: string;
  /** Set when the owner stopped existing; the address is freed after the grace, if no node holds it. */
  releasedAt?: string;
  /** Grace in seconds, from the service (default 600). */
  graceSeconds: number;
}

/** Stored at /kiver/ips/<pool>/<ip>. */
export interface AddressRecord {
  owner: string;
  at: string;
}

/** Stored at /kiver/ip-holders/<node>: the addresses the node's containers hold, as its agent last reported. */
export interface HolderReport {
  node: string;
  addresses: string[];
  at: string;
}

export const HolderReportBody = Type.Object(
  { node: Type.String({ pattern: NODE_NAME }), addresses: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 5000 }) },
  { additionalProperties: false },
);

export const AuditRow = Type.Object({
  pool: Type.String(),
  ip: Type.String(),
  owner: Type.String(),
  state: Type.Union([Type.Literal('in-use'), Type.Literal('allocated'), Type.Literal('released'), Type.Literal('leaked'), Type.Literal('conflicting')]),
  holders: Type.Array(Type.String(), { description: 'nodes whose agents report a container with this address' }),
  note: Type.Optional(Type.String()),
});
export type AuditRow = Static<typeof AuditRow>;
export const AuditView = Type.Object({
  allocated: Type.Integer(),
  inUse: Type.Integer(),
  leaked: Type.Integer(),
  conflicting: Type.Integer(),
  reclaimed: Type.Integer({ description: 'leaked addresses freed by this call (with reclaim=true)' }),
  rows: Type.Array(AuditRow),
});
export type AuditView = Static<typeof AuditView>;

/** Default grace before an owner-less address is freed (per service: ipGraceSeconds). */
export const DEFAULT_IP_GRACE_S = 600;

export function networkName(pool: string): string {
  return `kiver-${pool}`;
}

import { Type, type Static } from '@sinclair/typebox';

/** One replica as the role controller last saw it. */
export const ReplicaRole = Type.Object({
  ordinal: Type.Integer(),
  role: Type.Union([Type.Literal('primary'), Type.Literal('replica'), Type.Literal('fenced'), Type.Literal('unknown'), Type.Literal('diverged')]),
  /** Seconds behind the primary (replicas, when the server says). */
  lagSeconds: Type.Optional(Type.Number()),
  /** Its position in the type's own terms (GTID list, replication offset). */
  position: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
});
export type ReplicaRole = Static<typeof ReplicaRole>;

/**
 * Stored at /kiver/service-roles/<name>, written by the leader's role controller only:
 * which replica is the primary (the write endpoint follows it) and each one's role.
 */
export const ServiceRoles = Type.Object({
  /** Bumped on every change of primary; proxies drop connections made under an older one. */
  epoch: Type.Integer(),
  /** Ordinal of the primary that accepts writes; absent before init and during a failover. */
  primary: Type.Optional(Type.Integer()),
  /** What the controller is doing: initialising, serving, failing over, switching over. */
  phase: Type.Union([Type.Literal('init'), Type.Literal('ready'), Type.Literal('failover'), Type.Literal('switchover')]),
  replicas: Type.Array(ReplicaRole),
  /** A planned switchover asked for (by `kiver service switchover`): to this ordinal, or -1 = the controller picks. */
  switchoverTo: Type.Optional(Type.Integer()),
  updatedAt: Type.String(),
});
export type ServiceRoles = Static<typeof ServiceRoles>;

import { Type, type Static } from '@sinclair/typebox';
import type { CpuPolicy, OnNodeLost } from './service.js';
import { NODE_NAME, SERVICE_NAME } from './names.js';
import type { ReplicaNetwork } from './pool.js';

/** What the agent runs for one replica; derived from the service spec by the controller. */
export interface ContainerSpec {
  image: string;
  command: string[];
  env: Record<string, string>;
  /** Sealed in the store; the assignments route opens it for the agent only. */
  secretEnv?: Record<string, string>;
  ports: { container: number; host: number; protocol: 'tcp' | 'udp' }[];
  cpu: number;
  cpuPolicy: CpuPolicy;
  /** Exclusive cores for cpuPolicy cpuset, chosen by the scheduler. */
  cpuset?: number[];
  memory: number;
  /** The service's disconnect policy; with `wait` the agent stops the container when it has lost every server. */
  onNodeLost?: OnNodeLost;
  /** The replica identity's fixed address and its pool's network (src/ipam/); absent = Docker's default bridge. */
  network?: ReplicaNetwork;
}

/**
 * Stored at /kiver/replicas/<service>/<ordinal>: the assignment of one replica
 * identity to a node. Written by the controller only; the agent watches it.
 */
export interface Replica {
  service: string;
  ordinal: number;
  /** New uid = a new incarnation; data dirs are keyed by service/ordinal, not uid. */
  uid: string;
  /** Empty while no node fits (pending). */
  node: string;
  generation: number;
  spec: ContainerSpec;
  desired: 'run' | 'delete';
  /** With desired=delete: also remove the data and log directories. */
  purge?: boolean;
  /** Why the replica is pending, when it is. */
  pendingReason?: string;
  /** Moves off lost nodes so far, for exponential backoff. */
  reschedule?: { count: number; lastAt: string };
  createdAt: string;
}

/** The states an agent may report. */
export const REPORTED_STATES = ['pending', 'creating', 'running', 'restarting', 'exited', 'crashloop', 'failed', 'removed'] as const;
/** Every state a replica can be in; `unknown` is the server's own (its node is not ready). */
export const REPLICA_STATES = [...REPORTED_STATES, 'unknown'] as const;
export type ReplicaState = (typeof REPLICA_STATES)[number];

/** Stored at /kiver/replica-status/<service>/<ordinal>; written by the agent. */
export interface ReplicaStatus {
  node: string;
  uid: string;
  generation: number;
  state: ReplicaState;
  containerId?: string;
  restartCount: number;
  exitCode?: number;
  startedAt?: string;
  lastError?: string;
  updatedAt: string;
}

/**
 * How the agent's lastError begins when Docker would not start the replica's container
 * (after START_ATTEMPTS tries with a fresh container each): the controller then places
 * the replica anew (fresh host ports, another node when one fits).
 */
export const START_FAILED = 'start failed: ';

/** One replica's status as the agent reports it (PUT /v1/agent/status). */
export const StatusItem = Type.Object(
  {
    service: Type.String({ pattern: SERVICE_NAME }),
    ordinal: Type.Integer({ minimum: 0, maximum: 100000 }),
    uid: Type.String({ maxLength: 64 }),
    generation: Type.Integer({ minimum: 0 }),
    state: Type.Union(REPORTED_STATES.map((st) => Type.Literal(st))),
    containerId: Type.Optional(Type.String({ maxLength: 128 })),
    restartCount: Type.Integer({ minimum: 0 }),
    exitCode: Type.Optional(Type.Integer()),
    startedAt: Type.Optional(Type.String({ maxLength: 64 })),
    lastError: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type StatusItem = Static<typeof StatusItem>;
export const StatusReport = Type.Object(
  { node: Type.String({ pattern: NODE_NAME }), statuses: Type.Array(StatusItem, { maxItems: 5000 }) },
  { additionalProperties: false },
);
export type StatusReport = Static<typeof StatusReport>;

/** Is this status about the replica's current incarnation and generation? Anything else says nothing about it. */
export function isCurrentStatus(r: { uid: string; generation: number }, st: ReplicaStatus | undefined): st is ReplicaStatus {
  return st !== undefined && st.uid === r.uid && st.generation === r.generation;
}

const PortView = Type.Object({ container: Type.Integer(), host: Type.Integer(), protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]) });
/** A replica with its status, as the API returns it. */
export const ReplicaView = Type.Object({
  id: Type.String({ description: 'service/ordinal' }),
  service: Type.String(),
  ordinal: Type.Integer(),
  uid: Type.String(),
  node: Type.String({ description: 'empty while pending' }),
  generation: Type.Integer(),
  desired: Type.Union([Type.Literal('run'), Type.Literal('delete')]),
  state: Type.Union(REPLICA_STATES.map((st) => Type.Literal(st))),
  containerId: Type.Optional(Type.String()),
  restartCount: Type.Integer(),
  lastError: Type.Optional(Type.String()),
  startedAt: Type.Optional(Type.String()),
  ports: Type.Array(PortView),
  cpuset: Type.Optional(Type.Array(Type.Integer())),
  ip: Type.Optional(Type.String({ description: "the replica's fixed address (kept for its whole life)" })),
  pool: Type.Optional(Type.String()),
});
export type ReplicaView = Static<typeof ReplicaView>;

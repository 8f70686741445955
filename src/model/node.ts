import { Type, type Static } from '@sinclair/typebox';
import { LABEL_KEY, NODE_NAME } from './names.js';

/** What a real machine can have: a registration claiming more is refused (it would attract every placement). */
export const MAX_NODE_CPUS = 4096;
export const MAX_NODE_MEMORY = 64 * 1024 ** 4;

export const NodeRegister = Type.Object(
  {
    name: Type.String({ pattern: NODE_NAME }),
    address: Type.String({ maxLength: 255, description: 'address clients use to reach published ports' }),
    cpus: Type.Integer({ minimum: 1, maximum: MAX_NODE_CPUS, description: 'logical CPUs' }),
    memory: Type.Integer({ minimum: 1, maximum: MAX_NODE_MEMORY, description: 'bytes' }),
    labels: Type.Optional(Type.Record(Type.String({ pattern: LABEL_KEY }), Type.String({ maxLength: 63 }), { additionalProperties: false })),
    dockerVersion: Type.Optional(Type.String({ maxLength: 64 })),
    agentVersion: Type.Optional(Type.String({ maxLength: 64 })),
    metricsUrl: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+/metrics$', maxLength: 255, description: "where the agent serves /metrics (a standalone agent's --metrics-listen)" })),
  },
  { additionalProperties: false },
);
export type NodeRegister = Static<typeof NodeRegister>;

/** Stored at /kiver/nodes/<name>. Liveness is the lease-bound key /kiver/node-alive/<name>. */
export interface Node {
  name: string;
  address: string;
  cpus: number;
  memory: number;
  labels: Record<string, string>;
  cordoned: boolean;
  /** Set by `kiver node drain`: replicas move off, one per service at a time, until the deadline. */
  drain?: { startedAt: string; deadline: string };
  lease: number;
  registeredAt: string;
  dockerVersion?: string;
  agentVersion?: string;
  metricsUrl?: string;
}

/** What an agent says about its host with each heartbeat (health checks, alerts). */
export const NodeHealthReport = Type.Object(
  {
    docker: Type.Object({ up: Type.Boolean(), error: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }),
    logDisk: Type.Optional(Type.Object(
      { path: Type.String({ maxLength: 4096 }), sizeBytes: Type.Integer({ minimum: 0 }), freeBytes: Type.Integer({ minimum: 0 }) },
      { additionalProperties: false },
    )),
  },
  { additionalProperties: false },
);
export type NodeHealthReport = Static<typeof NodeHealthReport>;

export const NodeHeartbeat = Type.Object(
  { node: Type.String({ pattern: NODE_NAME }), health: Type.Optional(NodeHealthReport) },
  { additionalProperties: false },
);

/** Stored at /kiver/node-health/<name>, written only when it changes (not every heartbeat). */
export interface NodeHealth extends NodeHealthReport {
  node: string;
  reportedAt: string;
}

/** Stored at /kiver/allocs/<node>: what the scheduler committed there (CAS-guarded). */
export interface NodeAlloc {
  /** Millicores, to keep sums exact. */
  cpuMilli: number;
  memory: number;
  /** Cores given exclusively to cpuset replicas. */
  exclusiveCores: number[];
  hostPorts: number[];
  /** Replica ids placed here, e.g. "redis/0". */
  replicas: string[];
}

export const emptyAlloc = (): NodeAlloc => ({ cpuMilli: 0, memory: 0, exclusiveCores: [], hostPorts: [], replicas: [] });

/**
 * Is this node ready? It is while its lease-bound alive key (/kiver/node-alive/<name>)
 * exists: the agent's heartbeats keep the lease, and the store deletes the key when
 * they stop for the node grace. Pass that key's value, or undefined when absent.
 */
export function isNodeReady(alive: unknown): boolean {
  return alive !== undefined;
}

const Labels = Type.Record(Type.String(), Type.String());
/** A node as the API returns it: what it registered, whether it is ready, and what is placed there. */
export const NodeView = Type.Object({
  name: Type.String(),
  address: Type.String(),
  cpus: Type.Integer(),
  memory: Type.Integer(),
  labels: Labels,
  cordoned: Type.Boolean(),
  drain: Type.Optional(Type.Object({ startedAt: Type.String(), deadline: Type.String() })),
  lease: Type.Integer(),
  registeredAt: Type.String(),
  dockerVersion: Type.Optional(Type.String()),
  agentVersion: Type.Optional(Type.String()),
  ready: Type.Boolean(),
  alloc: Type.Object({
    cpuMilli: Type.Integer(), memory: Type.Integer(), exclusiveCores: Type.Array(Type.Integer()),
    hostPorts: Type.Array(Type.Integer()), replicas: Type.Array(Type.String()),
  }),
});
export type NodeView = Static<typeof NodeView>;

import type { CpuPolicy, OnNodeLost } from './service.js';

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

export type ReplicaState =
  | 'pending' | 'creating' | 'running' | 'restarting' | 'exited' | 'crashloop' | 'failed' | 'removed'
  /** Its node is not ready: nothing is known of the container. */
  | 'unknown';

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

/** A replica with its status, as the API returns it. */
export interface ReplicaView {
  id: string;
  service: string;
  ordinal: number;
  uid: string;
  node: string;
  generation: number;
  desired: 'run' | 'delete';
  state: ReplicaState;
  containerId?: string;
  restartCount: number;
  lastError?: string;
  startedAt?: string;
  ports: ContainerSpec['ports'];
  cpuset?: number[];
}

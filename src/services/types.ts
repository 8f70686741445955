/**
 * What a catalog service type is: an image, a configuration template (the
 * container command built from validated parameters), its ports, the
 * credentials it needs, and the lifecycle hooks the role controller drives
 * (probe, init, replicate, promote, fence, rejoin, backup, restore).
 */
import type { Readable } from 'node:stream';
import type { ParamDefs, ParamValue } from './params.js';

/** Where a replica's server answers: its node's address and the published host port. */
export interface Addr {
  host: string;
  port: number;
}

/** Generated at create, sealed at rest; names are the type's own (admin, app, replication). */
export type Credentials = Record<string, string>;

/** One probe of one replica's server. */
export interface Probe {
  /** The server answered. */
  up: boolean;
  /** primary = accepts writes; replica = replicating from `source`; none = neither (fresh, fenced or restarted). */
  role: 'primary' | 'replica' | 'none';
  /** Where it replicates from (replicas). */
  source?: Addr;
  /** Replication link working (replicas). */
  linkUp?: boolean;
  /** How far its data goes, comparable between replicas of one service (GTID sequence, replication offset). */
  position: number;
  /** Human form of the position (a GTID list, an offset). */
  positionText: string;
  /** Seconds behind the primary, when the server says. */
  lagSeconds?: number;
  /** The replica's history is not a prefix of its source's: it must be rebuilt. */
  diverged?: boolean;
  error?: string;
}

export interface HookContext {
  credentials: Credentials;
  params: Record<string, ParamValue>;
  /** Replicas the primary must wait for before acknowledging (0 with a single replica). */
  syncReplicas: number;
}

export interface BackupStream {
  stream: Readable;
  /** Where the backup stops, in the type's own terms (GTID list, offset): a restore resumes replication from it. */
  position: string;
}

export interface Hooks {
  probe(at: Addr, c: HookContext): Promise<Probe>;
  /** First start of the first primary: users, databases; it stays read-only until open(). */
  init(primary: Addr, c: HookContext): Promise<void>;
  /** Point a replica (or a returning old primary: rejoin) at the primary; it becomes read-only. */
  replicate(replica: Addr, primary: Addr, c: HookContext): Promise<void>;
  /** Make a replica a primary: apply everything it received, stop replicating. Still read-only. */
  promote(replica: Addr, c: HookContext): Promise<void>;
  /** Let the primary accept writes (with its synchronous-replica guard on). */
  open(primary: Addr, c: HookContext): Promise<void>;
  /** Stop a server from accepting writes (best effort: it may be unreachable). */
  fence(at: Addr, c: HookContext): Promise<void>;
  /** A consistent copy of a replica's data as a byte stream, and its position (issue 13 stores it). */
  backup(at: Addr, c: HookContext): Promise<BackupStream>;
  /** Load a backup stream into a (fresh) server. */
  restore(at: Addr, c: HookContext, stream: Readable): Promise<void>;
  /**
   * Re-seed a replica whose history diverged (an old primary with transactions nobody
   * acknowledged) from the primary, keeping the primary writable; absent = the
   * server re-seeds itself (Redis: a full sync).
   */
  rebuild?(replica: Addr, primary: Addr, c: HookContext): Promise<void>;
}

export interface ContainerTemplate {
  image: string;
  command: string[];
  /** Credentials go in as secret env (sealed at rest, opened only for the agent). */
  secretEnv: Record<string, string>;
  env: Record<string, string>;
}

export interface ServiceType {
  name: string;
  description: string;
  /** The server's version as the image provides it (the catalog lists it). */
  version: string;
  /** The image `kiver image build` makes for it. */
  image: string;
  /** The one port clients and replicas use. */
  port: number;
  params: ParamDefs;
  /** Replica count bounds and default. */
  replicas: { min: number; max: number; default: number };
  memory: number;
  newCredentials(): Credentials;
  /** The container for one replica (ordinal from KIVER_ORDINAL inside it). */
  template(params: Record<string, ParamValue>, credentials: Credentials, replicas: number): ContainerTemplate;
  /** The credential a client uses, and the user name that goes with it. */
  clientCredential: { user: string; passwordKey: string; database?: string };
  hooks: Hooks;
}

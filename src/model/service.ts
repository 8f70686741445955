import { Type, type Static } from '@sinclair/typebox';
import { ENV_NAME, IMAGE_REF, LABEL_KEY, LABEL_VALUE, SERVICE_NAME } from './names.js';
import { ReplicaView } from './replica.js';
import { PolicySet } from './backup.js';
import { ServiceRoles } from './service-roles.js';

/** Catalog types (src/services/): app = your image; mysql and redis = managed, replicated. */
export const ServiceTypeName = Type.Union([Type.Literal('app'), Type.Literal('mysql'), Type.Literal('redis')], {
  description: 'app (default: your image) | mysql | redis (managed: primary + replicas, failover); see GET /v1/catalog',
});
const ParamsField = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), Type.Union([Type.String({ maxLength: 256 }), Type.Number(), Type.Boolean()]), {
  maxProperties: 64, additionalProperties: false, description: "the type's parameters, e.g. {\"max_connections\": 500}; unknown or out of range → 400",
});
/** Where a managed service's clients connect: ports every server proxies (write → primary, read → replicas). */
export const EndpointPorts = Type.Object({ write: Type.Integer(), read: Type.Integer() });

export const CpuPolicy = Type.Union([Type.Literal('shares'), Type.Literal('cpuset'), Type.Literal('quota')], {
  description: 'shares (default: relative weight), cpuset (exclusive whole cores), quota (hard CFS limit)',
});
export type CpuPolicy = Static<typeof CpuPolicy>;

export const OnNodeLost = Type.Union([Type.Literal('replace'), Type.Literal('wait')], {
  description: 'when the node is lost: replace = run it elsewhere at once (a partitioned node may run its copy meanwhile); ' +
    'wait = at most one copy: the cut-off agent stops it after the node grace and it moves only after that plus a margin',
});
export type OnNodeLost = Static<typeof OnNodeLost>;

export const PortSpec = Type.Object(
  {
    container: Type.Integer({ minimum: 1, maximum: 65535 }),
    /** Fixed host port; omitted = Kiver allocates one from the node's dynamic range. */
    host: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
  },
  { additionalProperties: false },
);
export type PortSpec = Static<typeof PortSpec>;

export const MIN_MEMORY = 6 * 1024 * 1024; // Docker refuses limits below 6 MiB
export const MAX_MEMORY = 4 * 1024 ** 4;
/** Replicas per service at most (a documented limit: each replica is a record, a container and a watch event). */
export const MAX_REPLICAS = 1000;
/** Services per `POST /v1/services/apply` (a burst of 3,000 replicas is 1,000 services of 3: one request). */
export const MAX_APPLY = 1000;
/** NUL ends a C string: Docker would cut an env value or argument there, silently. */
const NO_NUL = '^[^\\u0000]*$';
/** Host ports below this need the operator's leave (`kiver server --allow-low-host-ports`). */
export const LOW_PORT = 1024;
/** Docker refuses a CFS quota below 1 ms per 100 ms period. */
export const MIN_QUOTA_CPU = 0.01;

/** What the server adds to a spec check: its own ports, and whether low host ports are allowed. */
export interface PortPolicy {
  reserved: number[];
  allowLow: boolean;
}

export const MAX_CONSTRAINTS = 16;

/** Node label selector: a replica is placed only on nodes carrying every key=value (set at create). */
export const Constraints = Type.Record(Type.String({ pattern: LABEL_KEY }), Type.String({ pattern: LABEL_VALUE }), {
  maxProperties: MAX_CONSTRAINTS, additionalProperties: false,
  description: 'node labels a replica needs, e.g. {"zone": "eu-1"}; a replica no node matches stays pending',
});

/** Fixed IPs (src/ipam/), set at create: the app whose pools the service also draws from, the grace, pinned addresses. */
export const NetworkFields = {
  app: Type.Optional(Type.String({ pattern: SERVICE_NAME, description: "the app this service belongs to: its replicas take addresses from the service's pools, then the app's, then global pools" })),
  ipGraceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86400, description: 'how long a deleted replica identity keeps its address for a re-created service of the same name (default 600)' })),
  ips: Type.Optional(Type.Record(Type.String({ pattern: '^(0|[1-9][0-9]{0,3})$' }), Type.String({ maxLength: 64 }), {
    maxProperties: MAX_REPLICAS, additionalProperties: false, description: 'pinned address per ordinal, e.g. {"0": "10.1.0.5"}',
  })),
};

/** What a user may change; create takes name + these. */
export const ServiceFields = {
  image: Type.String({ pattern: IMAGE_REF, maxLength: 255, description: 'image reference, e.g. kiver/redis:latest' }),
  command: Type.Optional(Type.Array(Type.String({ maxLength: 4096, pattern: NO_NUL }), { maxItems: 256 })),
  env: Type.Optional(Type.Record(Type.String({ pattern: ENV_NAME }), Type.String({ maxLength: 32768, pattern: NO_NUL }), { maxProperties: 256, additionalProperties: false })),
  secretEnv: Type.Optional(Type.Record(Type.String({ pattern: ENV_NAME }), Type.String({ maxLength: 32768, pattern: NO_NUL }), {
    maxProperties: 64, additionalProperties: false,
    description: 'environment variables encrypted at rest and never returned by the API (passwords, keys)',
  })),
  ports: Type.Optional(Type.Array(PortSpec, { maxItems: 32 })),
  cpu: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU cores' })),
  cpuPolicy: Type.Optional(CpuPolicy),
  memory: Type.Optional(Type.Integer({ minimum: MIN_MEMORY, maximum: MAX_MEMORY, description: 'memory limit in bytes' })),
  replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_REPLICAS })),
  localData: Type.Optional(Type.Boolean({
    description: 'replicas own data on their node: never moved automatically when the node is lost or drained',
  })),
  onNodeLost: Type.Optional(OnNodeLost),
};

export const ServiceCreate = Type.Object(
  {
    name: Type.String({ pattern: SERVICE_NAME, description: 'DNS label, at most 40 characters' }),
    ...ServiceFields,
    image: Type.Optional(ServiceFields.image),
    type: Type.Optional(ServiceTypeName),
    params: Type.Optional(ParamsField),
    constraints: Type.Optional(Constraints),
    /** Scheduled backups (stored as the service's backup policy, not in its spec). */
    backup: Type.Optional(PolicySet),
    ...NetworkFields,
  },
  { additionalProperties: false },
);
export type ServiceCreate = Static<typeof ServiceCreate>;

export const ServiceUpdate = Type.Object(
  {
    image: Type.Optional(ServiceFields.image),
    command: ServiceFields.command,
    env: ServiceFields.env,
    secretEnv: ServiceFields.secretEnv,
    ports: ServiceFields.ports,
    cpu: ServiceFields.cpu,
    cpuPolicy: ServiceFields.cpuPolicy,
    memory: ServiceFields.memory,
    replicas: ServiceFields.replicas,
    localData: ServiceFields.localData,
    onNodeLost: ServiceFields.onNodeLost,
  },
  { additionalProperties: false, minProperties: 1 },
);
export type ServiceUpdate = Static<typeof ServiceUpdate>;

export const ScaleRequest = Type.Object(
  { replicas: Type.Integer({ minimum: 0, maximum: MAX_REPLICAS }) },
  { additionalProperties: false },
);

/** The desired state of a service, with defaults applied (stored, and returned with secretEnv masked). */
export const ServiceSpec = Type.Object({
  name: Type.String(),
  image: Type.String(),
  command: Type.Array(Type.String()),
  env: Type.Record(Type.String(), Type.String()),
  /** name → AES-256-GCM envelope (see secrets.ts); plaintext exists only on its way to the agent; the API shows "(set)". */
  secretEnv: Type.Record(Type.String(), Type.String()),
  ports: Type.Array(PortSpec),
  cpu: Type.Number(),
  cpuPolicy: CpuPolicy,
  memory: Type.Integer(),
  replicas: Type.Integer(),
  /** Replicas are bound to their node (their data lives there). */
  localData: Type.Boolean(),
  /** Node labels every replica's node must carry; set at create, absent = any node. */
  constraints: Type.Optional(Constraints),
  /** Disconnect policy; absent in specs stored before it existed (see nodeLostPolicy). */
  onNodeLost: Type.Optional(OnNodeLost),
  /** Catalog type; absent = app. */
  type: Type.Optional(ServiceTypeName),
  /** The type's parameters, validated and with defaults. */
  params: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]))),
  /** Managed types: the client endpoint ports. */
  endpoints: Type.Optional(EndpointPorts),
  ...NetworkFields,
});
export type ServiceSpec = Static<typeof ServiceSpec>;

/** The disconnect policy: `wait` (at most one copy) for local-data services, else `replace`, unless set. */
export function nodeLostPolicy(spec: Pick<ServiceSpec, 'onNodeLost' | 'localData'>): OnNodeLost {
  return spec.onNodeLost ?? (spec.localData ? 'wait' : 'replace');
}

/** Stored at /kiver/services/<name>. */
export interface Service {
  spec: ServiceSpec;
  uid: string;
  /** Bumped on every change that needs containers recreated (rolling update). */
  generation: number;
  createdAt: string;
  updatedAt: string;
  /** Set by delete; the controller removes replicas, then the service. */
  deleting?: { purge: boolean; at: string };
}

/** 0.1 core by default: with shares it is a weight, not a cap, so small defaults pack a node the way Nomad's 100 MHz does. */
export const DEFAULTS = { cpu: 0.1, cpuPolicy: 'shares' as CpuPolicy, memory: 256 * 1024 * 1024, replicas: 3 };

/** Semantic checks the JSON schema cannot express; returns [field, message] or undefined. */
export function checkServiceSpec(spec: ServiceSpec, ports: PortPolicy = { reserved: [], allowLow: false }): [string, string] | undefined {
  if (spec.cpuPolicy === 'cpuset' && !Number.isInteger(spec.cpu)) {
    return ['cpu', 'cpuPolicy cpuset needs a whole number of cores'];
  }
  // Allocations are kept in millicores: a request that rounds to 0 would take nothing and fit anywhere.
  if (Math.round(spec.cpu * 1000) < 1) return ['cpu', 'must be at least 0.001 (1 millicore)'];
  if (spec.cpuPolicy === 'quota' && spec.cpu < MIN_QUOTA_CPU) return ['cpu', `cpuPolicy quota needs at least ${MIN_QUOTA_CPU} CPU (Docker's 1 ms minimum quota)`];
  const seen = new Set<string>();
  const hosts = new Set<string>();
  for (const [i, p] of spec.ports.entries()) {
    const k = `${p.container}/${p.protocol ?? 'tcp'}`;
    if (seen.has(k)) return [`ports/${i}/container`, `container port ${k} listed twice`];
    seen.add(k);
    if (p.host === undefined) continue;
    const h = `${p.host}/${p.protocol ?? 'tcp'}`;
    if (hosts.has(h)) return [`ports/${i}/host`, `host port ${h} listed twice`];
    hosts.add(h);
    if (ports.reserved.includes(p.host)) return [`ports/${i}/host`, `host port ${p.host} is one of Kiver's own ports`];
    if (p.host < LOW_PORT && !ports.allowLow) return [`ports/${i}/host`, `host port ${p.host} is below ${LOW_PORT}; the operator must allow low host ports (kiver server --allow-low-host-ports)`];
  }
  return undefined;
}

/** Defaults applied; secretEnv still plaintext here — the API seals it before storing. */
export function applyDefaults(c: ServiceCreate): ServiceSpec {
  return {
    name: c.name,
    image: c.image ?? '',
    command: c.command ?? [],
    env: c.env ?? {},
    secretEnv: c.secretEnv ?? {},
    ports: c.ports ?? [],
    cpu: c.cpu ?? DEFAULTS.cpu,
    cpuPolicy: c.cpuPolicy ?? DEFAULTS.cpuPolicy,
    memory: c.memory ?? DEFAULTS.memory,
    replicas: c.replicas ?? DEFAULTS.replicas,
    localData: c.localData ?? false,
    ...(c.constraints && Object.keys(c.constraints).length > 0 ? { constraints: c.constraints } : {}),
    onNodeLost: nodeLostPolicy({ onNodeLost: c.onNodeLost, localData: c.localData ?? false }),
    ...(c.type && c.type !== 'app' ? { type: c.type } : {}),
    ...(c.app ? { app: c.app } : {}),
    ...(c.ipGraceSeconds !== undefined ? { ipGraceSeconds: c.ipGraceSeconds } : {}),
    ...(c.ips && Object.keys(c.ips).length > 0 ? { ips: c.ips } : {}),
  };
}

/** Fields whose change needs the containers recreated (everything but the replica count). */
export function needsRollout(a: ServiceSpec, b: ServiceSpec): boolean {
  const { replicas: _ra, localData: _la, onNodeLost: _oa, ...ra } = a;
  const { replicas: _rb, localData: _lb, onNodeLost: _ob, ...rb } = b;
  return JSON.stringify(ra) !== JSON.stringify(rb);
}

/** A service as the API returns it: its spec (secrets masked), a status summary, and its replicas. */
export const ServiceView = Type.Object({
  name: Type.String(),
  uid: Type.String(),
  generation: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  deleting: Type.Boolean(),
  spec: ServiceSpec,
  status: Type.Object({ desired: Type.Integer(), running: Type.Integer(), pending: Type.Integer(), updated: Type.Integer(), restarts: Type.Integer() }),
  replicas: Type.Array(ReplicaView),
  /** Managed types: each replica's role and lag (the role controller's last view). */
  roles: Type.Optional(ServiceRoles),
});
export type ServiceView = Static<typeof ServiceView>;

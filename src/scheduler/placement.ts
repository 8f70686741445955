/**
 * Pure placement (DESIGN principle 4): (cluster snapshot, request) -> placement.
 * No I/O. The caller commits the result with compare-and-swap on the touched
 * nodes' allocation keys and re-plans on conflict, so it never double-books.
 *
 * Like Nomad's limit iterator, it scans nodes from a rotating offset and stops
 * after `limit` feasible candidates that hold no replica of the service, then
 * takes the best score among them: O(limit) per placement on a big, mostly
 * empty cluster, exhaustive on a small one.
 */
import type { CpuPolicy } from '../model/service.js';
import type { NodeAlloc } from '../model/node.js';

export interface NodeCandidate {
  name: string;
  ready: boolean;
  cordoned: boolean;
  cpus: number;
  memory: number;
  /** The node's labels, matched against a request's constraints. */
  labels: Readonly<Record<string, string>>;
  alloc: NodeAlloc;
}

export interface PlacementRequest {
  service: string;
  cpu: number;
  cpuPolicy: CpuPolicy;
  memory: number;
  ports: { container: number; host?: number; protocol?: 'tcp' | 'udp' }[];
  /** Label selector: a node qualifies only if it carries every key with exactly this value. */
  constraints?: Readonly<Record<string, string>>;
  /** Hard anti-affinity: never two replicas of the service on one node (replicated databases). */
  distinct?: boolean;
}

export interface Placement {
  node: string;
  /** Exclusive cores, for cpuPolicy cpuset. */
  cpuset?: number[];
  /** Host port for each requested port, same order. */
  hostPorts: number[];
}

export interface PlacementOptions {
  /** Where the scan starts (rotate it between calls to spread the work). */
  offset?: number;
  /** Feasible anti-affine candidates to collect before choosing. */
  limit?: number;
  /**
   * Allocations booked by the caller's uncommitted plan, by position in `nodes` (see
   * plan-allocs.ts): they override the nodes' committed `alloc`, so a plan sees its own
   * bookings without editing shared state. Positional, as a lookup per scanned node must
   * cost next to nothing on a 10,000-node scan.
   */
  overlay?: readonly (NodeAlloc | undefined)[];
}

export const DYNAMIC_PORTS = { min: 20000, max: 32767 } as const;

export type PlacementResult = { ok: true; placement: Placement } | { ok: false; reason: string };
/** `place`'s result also says where the chosen node is in `nodes`. */
export type PlaceResult = { ok: true; placement: Placement; index: number } | { ok: false; reason: string };

export function cpuMilli(cpu: number): number {
  return Math.round(cpu * 1000);
}

const DYNAMIC_SPAN = DYNAMIC_PORTS.max - DYNAMIC_PORTS.min + 1;
const inDynamicRange = (p: number) => p >= DYNAMIC_PORTS.min && p <= DYNAMIC_PORTS.max;

/** What the per-node checks need from a request, worked out once per placement, not per node. */
interface Needs {
  cpuMilli: number;
  memory: number;
  /** Whole cores, for cpuset; 0 otherwise. */
  cores: number;
  fixedPorts: number[];
  dynamicPorts: number;
  /** Fixed ports inside the dynamic range: they use it up too. */
  fixedInRange: number;
  constraints: [string, string][];
}

function needsOf(req: PlacementRequest): Needs {
  const fixedPorts = req.ports.flatMap((p) => (p.host === undefined ? [] : [p.host]));
  return {
    cpuMilli: cpuMilli(req.cpu), memory: req.memory, cores: req.cpuPolicy === 'cpuset' ? req.cpu : 0,
    fixedPorts, dynamicPorts: req.ports.length - fixedPorts.length, fixedInRange: fixedPorts.filter(inDynamicRange).length,
    constraints: Object.entries(req.constraints ?? {}),
  };
}

/** Whether the node's dynamic range still has the ports the request needs. */
function dynamicPortsFree(a: NodeAlloc, n: Needs): boolean {
  // Nearly always far from full: count only when it could be.
  if (a.hostPorts.length + n.fixedPorts.length + n.dynamicPorts <= DYNAMIC_SPAN) return true;
  let used = n.fixedInRange; // not in hostPorts (checked before)
  for (const p of a.hostPorts) if (inDynamicRange(p)) used++;
  return DYNAMIC_SPAN - used >= n.dynamicPorts;
}

/** Why the node's resources cannot hold the request (capacity, cores, ports), or undefined. */
function unfitResources(node: NodeCandidate, a: NodeAlloc, n: Needs): string | undefined {
  if (a.cpuMilli + n.cpuMilli > node.cpus * 1000) return 'not enough CPU';
  if (a.memory + n.memory > node.memory) return 'not enough memory';
  if (n.cores > 0 && node.cpus - a.exclusiveCores.length < n.cores) return 'not enough whole free cores for cpuset';
  for (let i = 0; i < n.fixedPorts.length; i++) if (a.hostPorts.includes(n.fixedPorts[i])) return `host port ${n.fixedPorts[i]} in use`;
  if (n.dynamicPorts > 0 && !dynamicPortsFree(a, n)) return `no free host port in ${DYNAMIC_PORTS.min}-${DYNAMIC_PORTS.max}`;
  return undefined;
}

function check(node: NodeCandidate, a: NodeAlloc, n: Needs): string | undefined {
  if (!node.ready) return 'node not ready';
  if (node.cordoned) return 'node cordoned';
  // Indexed: an iterator per node costs more than the rest of the checks on a big scan.
  for (let i = 0; i < n.constraints.length; i++) {
    const [k, v] = n.constraints[i];
    if (node.labels[k] !== v) return `node labels do not match constraint ${k}=${v}`;
  }
  return unfitResources(node, a, n);
}

/** Why a node cannot take the request, or undefined if it can. */
export function unfit(node: NodeCandidate, req: PlacementRequest, a: NodeAlloc = node.alloc): string | undefined {
  return check(node, a, needsOf(req));
}

function hostsService(a: NodeAlloc, service: string): boolean {
  const prefix = `${service}/`;
  for (const r of a.replicas) if (r.startsWith(prefix)) return true;
  return false;
}

/** Least-allocated score in [0, 1]: spreads load, like kube-scheduler's default. */
function score(node: NodeCandidate, a: NodeAlloc, n: Needs): number {
  const cpuFree = 1 - (a.cpuMilli + n.cpuMilli) / (node.cpus * 1000);
  const memFree = 1 - (a.memory + n.memory) / node.memory;
  return (cpuFree + memFree) / 2;
}

function pickCores(node: NodeCandidate, a: NodeAlloc, count: number): number[] {
  const used = new Set(a.exclusiveCores);
  const cores: number[] = [];
  for (let c = 0; c < node.cpus && cores.length < count; c++) if (!used.has(c)) cores.push(c);
  return cores;
}

/** Fixed ports as asked; dynamic ones lowest-free-first (unfit checked that enough are free). */
function pickPorts(a: NodeAlloc, req: PlacementRequest): number[] {
  const used = new Set(a.hostPorts);
  for (const p of req.ports) if (p.host !== undefined) used.add(p.host);
  let next: number = DYNAMIC_PORTS.min;
  return req.ports.map((p) => {
    if (p.host !== undefined) return p.host;
    while (used.has(next)) next++;
    used.add(next);
    return next;
  });
}

export function place(nodes: readonly NodeCandidate[], req: PlacementRequest, opts: PlacementOptions = {}): PlaceResult {
  const n = nodes.length;
  if (n === 0) return { ok: false, reason: 'no nodes registered' };
  const limit = opts.limit ?? 32;
  const start = ((opts.offset ?? 0) % n + n) % n;
  let best = -1;
  let bestScore = -Infinity;
  let fallback = -1; // feasible but already hosts the service
  let fallbackScore = -Infinity;
  let found = 0;
  const reasons = new Map<string, number>();
  const needs = needsOf(req);
  const overlay = opts.overlay;
  for (let i = 0; i < n; i++) {
    const at = (start + i) % n;
    const node = nodes[at];
    const a = (overlay && overlay[at]) ?? node.alloc;
    const why = check(node, a, needs);
    if (why) {
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      continue;
    }
    const s = score(node, a, needs);
    if (hostsService(a, req.service)) {
      if (req.distinct) {
        reasons.set('already hosts a replica of the service', (reasons.get('already hosts a replica of the service') ?? 0) + 1);
        continue;
      }
      if (s > fallbackScore || (s === fallbackScore && fallback >= 0 && node.name < nodes[fallback].name)) {
        fallback = at;
        fallbackScore = s;
      }
      continue;
    }
    if (s > bestScore || (s === bestScore && best >= 0 && node.name < nodes[best].name)) {
      best = at;
      bestScore = s;
    }
    if (++found >= limit) break;
  }
  const chosen = best >= 0 ? best : fallback;
  if (chosen < 0) {
    const detail = [...reasons].map(([why, count]) => `${count} ${why}`).join(', ');
    return { ok: false, reason: `0/${n} nodes fit: ${detail}` };
  }
  const node = nodes[chosen];
  return { ok: true, placement: assign(node, (overlay && overlay[chosen]) ?? node.alloc, req), index: chosen };
}

/** Host ports and cores for the request on a node that fits it. */
function assign(node: NodeCandidate, a: NodeAlloc, req: PlacementRequest): Placement {
  const placement: Placement = { node: node.name, hostPorts: pickPorts(a, req) };
  if (req.cpuPolicy === 'cpuset') placement.cpuset = pickCores(node, a, req.cpu);
  return placement;
}

/**
 * Re-fits a replica on the node it already occupies (a rolling update keeps its identity
 * and data there): `freed` is the node's allocation without the replica's old share.
 * Only resources count: readiness, cordon and label constraints decided where the replica
 * lives, not whether it may change in place.
 */
export function refit(node: NodeCandidate, freed: NodeAlloc, req: PlacementRequest): PlacementResult {
  const why = unfitResources(node, freed, needsOf(req));
  return why ? { ok: false, reason: why } : { ok: true, placement: assign(node, freed, req) };
}

/** The node's allocation after adding a placed replica (pure; returns a copy). */
export function addToAlloc(a: NodeAlloc, replica: string, req: PlacementRequest, p: Placement): NodeAlloc {
  return {
    cpuMilli: a.cpuMilli + cpuMilli(req.cpu),
    memory: a.memory + req.memory,
    exclusiveCores: [...a.exclusiveCores, ...(p.cpuset ?? [])].sort((x, y) => x - y),
    hostPorts: [...a.hostPorts, ...p.hostPorts].sort((x, y) => x - y),
    replicas: [...a.replicas, replica],
  };
}

/** The node's allocation after removing a replica (idempotent: unknown replica = no change). */
export function removeFromAlloc(
  a: NodeAlloc,
  replica: string,
  used: { cpu: number; memory: number; cpuset?: number[]; hostPorts: number[] },
): NodeAlloc {
  if (!a.replicas.includes(replica)) return a;
  const cores = new Set(used.cpuset ?? []);
  const ports = new Set(used.hostPorts);
  return {
    cpuMilli: Math.max(0, a.cpuMilli - cpuMilli(used.cpu)),
    memory: Math.max(0, a.memory - used.memory),
    exclusiveCores: a.exclusiveCores.filter((c) => !cores.has(c)),
    hostPorts: a.hostPorts.filter((p) => !ports.has(p)),
    replicas: a.replicas.filter((r) => r !== replica),
  };
}

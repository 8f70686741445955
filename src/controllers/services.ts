/**
 * The service controller: level-triggered reconciliation of each service's
 * desired state (replica count, spec, deletion) into replica assignments.
 * It is the only writer of /kiver/replicas/ and /kiver/allocs/, and every write
 * is a compare-and-swap on what it read, so a stale view or a second controller
 * re-plans instead of double-booking a node.
 */
import { randomUUID } from 'node:crypto';
import type { Store, Op, Compare } from '../store/store.js';
import type { StoreCache, CacheChange } from './cache.js';
import type { NodeIndex } from './node-index.js';
import type { EventRecorder } from './events.js';
import type { Logger } from '../log.js';
import { K } from '../model/keys.js';
import { replicaId } from '../model/names.js';
import { nodeLostPolicy, type Service } from '../model/service.js';
import { EvictionBrake, type EvictionOptions } from './eviction.js';
import { START_FAILED, isCurrentStatus, type ContainerSpec, type Replica, type ReplicaStatus } from '../model/replica.js';
import { emptyAlloc, type Node, type NodeAlloc } from '../model/node.js';
import { addToAlloc, place, refit, removeFromAlloc, type NodeCandidate, type Placement, type PlacementRequest } from '../scheduler/placement.js';
import { PlanAllocs } from '../scheduler/plan-allocs.js';
import { metrics } from '../metrics.js';
import type { ReplicaNetwork } from '../model/pool.js';

/** Replicas planned per chunk, and the most ops one plan commit carries (etcd allows 128). */
const TXN_BATCH = 32;
const PLAN_MAX_OPS = 120;

/**
 * Placements of many services committed together, like Nomad's plan applier: on etcd
 * one commit costs a consensus round and an fsync, so committing per service caps
 * throughput at the store's txn rate; a plan carries up to PLAN_MAX_OPS writes.
 */
class Plan {
  readonly compares = new Map<string, number>();
  readonly puts = new Map<string, string>();
  /** The plan's own bookings; the shared node index changes only once the plan commits. */
  readonly allocs = new PlanAllocs();
  readonly services = new Set<string>();
  placed = 0;
}

/**
 * For `wait` replicas: how long after the leader saw their node NotReady before they move.
 * The cut-off agent stops them one node grace after its last heartbeat was sent — no later
 * than the lease expiry the leader saw — so this only has to cover the agent's reaction
 * (a 250 ms check) and `docker stop` (2 s).
 */
export const WAIT_MARGIN_MS = 5_000;

/** Wait before moving a replica off a lost node again: 0 for the first move, then 5 s doubling to 5 min. */
export function rescheduleDelayMs(previousMoves: number): number {
  return previousMoves === 0 ? 0 : Math.min(5_000 * 2 ** (previousMoves - 1), 300_000);
}

interface Entry<T> {
  value: T;
  modRevision: number;
}

export function requestFor(svc: Service): PlacementRequest {
  const s = svc.spec;
  return {
    service: s.name, cpu: s.cpu, cpuPolicy: s.cpuPolicy, memory: s.memory, ports: s.ports, constraints: s.constraints,
    ...(s.type && s.type !== 'app' ? { distinct: true } : {}),
  };
}

/** Replicas on a fixed address are at-most-one whatever the service says: an address must never be live on two hosts. */
export function replicaPolicy(svc: Service, spec: Pick<ContainerSpec, 'network'>): 'replace' | 'wait' {
  return spec.network ? 'wait' : nodeLostPolicy(svc.spec);
}

/** A replica's network: the one it has (kept for life), one the IPAM gives, or why it must wait (a string). */
export type AddressSource = (svc: Service, ordinal: number) => Promise<ReplicaNetwork | string | undefined>;

export function containerSpecFor(svc: Service, p: Placement, network?: ReplicaNetwork): ContainerSpec {
  const s = svc.spec;
  const spec: ContainerSpec = {
    image: s.image,
    command: s.command,
    env: s.env,
    secretEnv: s.secretEnv ?? {},
    ports: s.ports.map((port, i) => ({ container: port.container, host: p.hostPorts[i], protocol: port.protocol ?? 'tcp' })),
    cpu: s.cpu,
    cpuPolicy: s.cpuPolicy,
    memory: s.memory,
    onNodeLost: network ? 'wait' : nodeLostPolicy(s),
  };
  if (p.cpuset) spec.cpuset = p.cpuset;
  if (network) spec.network = network;
  return spec;
}

function usage(spec: ContainerSpec) {
  return { cpu: spec.cpu, memory: spec.memory, cpuset: spec.cpuset, hostPorts: spec.ports.map((p) => p.host) };
}

export class ServiceController {
  private readonly dirty = new Set<string>();
  private wake?: () => void;
  private running = false;
  private loopDone?: Promise<void>;
  private offset = 0;
  private resyncTimer?: NodeJS.Timeout;
  private readonly pending = new Set<string>();
  private nodesChanged = false;
  private readonly onChange = (c: CacheChange) => this.route(c);

  constructor(
    private readonly store: Store,
    private readonly cache: StoreCache,
    private readonly nodes: NodeIndex,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    /** Anti-affine feasible nodes to compare per placement (see scheduler/placement.ts). */
    private readonly placementLimit = 32,
    /** The leader fence every write carries (see leader.ts); none when running alone in a test. */
    private readonly fence?: () => Compare | undefined,
    eviction: EvictionOptions = {},
  ) {
    this.brake = new EvictionBrake(nodes, events, eviction);
    this.brake.onSettled = () => this.running && this.markAll();
  }

  private readonly brake: EvictionBrake;
  /** Fixed IPs (src/ipam/); without it replicas use Docker's default network. */
  addresses?: AddressSource;

  start(): void {
    this.running = true;
    this.cache.on('change', this.onChange);
    this.markAll();
    this.resyncTimer = setInterval(() => this.markAll(), 10_000).unref();
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.cache.off('change', this.onChange);
    clearInterval(this.resyncTimer);
    this.wake?.();
    await this.loopDone;
  }

  /** Marks every known service for reconciliation. */
  markAll(): void {
    for (const kv of this.cache.all(K.services)) this.mark(kv.key.slice(K.services.length));
    for (const s of this.cache.groups(K.replicas)) this.mark(s);
  }

  mark(service: string): void {
    this.dirty.add(service);
    this.wake?.();
  }

  private route(c: CacheChange): void {
    if (c.key.startsWith(K.services)) this.mark(c.key.slice(K.services.length));
    else if (c.key.startsWith(K.replicas)) this.mark(c.key.slice(K.replicas.length).split('/')[0]);
    else if (c.key.startsWith(K.statuses)) this.mark(c.key.slice(K.statuses.length).split('/')[0]);
    else if (c.key.startsWith(K.nodes) || c.key.startsWith(K.alives)) {
      // Readiness, cordon or drain changed: replicas may have to move, pending ones may fit.
      // Coalesced into the loop's next turn: a wave of 10,000 joins costs one brake check
      // (O(nodes)) and one markAll, not one each (the profile of 2,000 joins: 5 % of the CPU).
      this.nodesChanged = true;
      this.wake?.();
    } else if (c.key.startsWith(K.allocs) && !c.kv) {
      for (const s of this.pending) this.mark(s);
    }
  }

  /** Resolves when nothing is dirty (used by tests and the benchmark). */
  async idle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.dirty.size > 0 || this.busy || this.nodesChanged) {
      if (Date.now() > deadline) throw new Error('controller did not settle');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private busy = false;
  private plan = new Plan();

  /** Commits the pending plan; on a conflict, drops it and re-queues its services. */
  private async flush(): Promise<void> {
    const plan = this.plan;
    this.plan = new Plan();
    if (plan.puts.size === 0) return;
    const compare = [...plan.compares].map(([key, modRevision]) => ({ key, modRevision }));
    const ops: Op[] = [...plan.puts].map(([key, value]) => ({ type: 'put', key, value }));
    let ok = false;
    try {
      ok = await this.commit(compare, ops);
    } finally {
      if (!ok) {
        // Its bookings were never applied to the shared index; re-plan on a fresh view.
        await this.cache.sync().catch(() => {});
        for (const svc of plan.services) setTimeout(() => this.mark(svc), 50).unref();
      }
    }
    if (ok) metrics.placements.inc(plan.placed);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      if (this.nodesChanged) {
        this.nodesChanged = false;
        this.brake.holding();
        this.markAll();
      }
      if (this.dirty.size === 0) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      this.busy = true;
      const batch = [...this.dirty];
      this.dirty.clear();
      for (const name of batch) {
        if (!this.running) break;
        const end = metrics.reconcileSeconds.startTimer();
        try {
          await this.reconcile(name);
        } catch (err) {
          this.log.warn({ service: name, err: (err as Error).message }, 'reconcile failed; will retry');
          // A conflict means our view was stale: wait for the cache to catch up, then retry.
          await this.cache.sync().catch(() => {});
          setTimeout(() => this.mark(name), 200).unref();
        } finally {
          end();
        }
      }
      await this.flush().catch((err) => this.log.warn({ err: (err as Error).message }, 'plan commit failed; will retry'));
      this.busy = false;
    }
  }

  private replicasOf(name: string): Map<number, Entry<Replica>> {
    const out = new Map<number, Entry<Replica>>();
    for (const kv of this.cache.group(K.replicas, name)) {
      const r = JSON.parse(kv.value) as Replica;
      out.set(r.ordinal, { value: r, modRevision: kv.modRevision });
    }
    return out;
  }

  private statusOf(name: string, ordinal: number): ReplicaStatus | undefined {
    return this.cache.get<ReplicaStatus>(K.status(name, ordinal));
  }

  private allocEntry(node: string): Entry<NodeAlloc> {
    const kv = this.cache.getKv(K.alloc(node));
    return kv ? { value: JSON.parse(kv.value) as NodeAlloc, modRevision: kv.modRevision } : { value: emptyAlloc(), modRevision: 0 };
  }

  private timedPlace(nodes: NodeCandidate[], req: PlacementRequest, overlay: NonNullable<Parameters<typeof place>[2]>['overlay']): ReturnType<typeof place> {
    const end = metrics.placementSeconds.startTimer();
    try {
      return place(nodes, req, { offset: this.offset++, limit: this.placementLimit, overlay });
    } finally {
      end();
    }
  }

  /** Runs a txn and mirrors its writes into the cache; false when a compare failed. */
  private async commit(compare: Compare[], ops: Op[]): Promise<boolean> {
    if (this.fence) {
      const f = this.fence();
      if (!f) throw new Error('not the leader; not writing');
      compare = [...compare, f];
    }
    const res = await this.store.txn({ compare, success: ops });
    if (!res.succeeded) {
      metrics.commitConflicts.inc();
      return false;
    }
    for (const op of ops) {
      if (op.type === 'put') this.cache.applyLocal(op.key, op.value, res.revision);
      else if (op.type === 'delete') this.cache.applyLocal(op.key, undefined, res.revision);
    }
    return true;
  }

  private conflict(name: string): never {
    throw new Error(`write conflict on ${name}; re-planning`);
  }

  async reconcile(name: string): Promise<void> {
    const svcKv = this.cache.getKv(K.service(name));
    const svc = svcKv ? (JSON.parse(svcKv.value) as Service) : undefined;
    const replicas = this.replicasOf(name);

    await this.finishRemovals(name, replicas);

    if (!svc || svc.deleting) {
      const purge = svc?.deleting?.purge ?? false;
      await this.markForDelete(name, [...replicas.values()].filter((e) => e.value.desired === 'run'), purge);
      if (svc && svcKv && replicas.size === 0) {
        const ok = await this.commit([{ key: svcKv.key, modRevision: svcKv.modRevision }], [{ type: 'delete', key: svcKv.key }]);
        if (!ok) this.conflict(name);
        await this.events.record(`service/${name}`, 'Normal', 'Deleted', `service ${name} deleted${purge ? ' and its data purged' : ''}`);
      }
      this.pending.delete(name);
      return;
    }

    const n = svc.spec.replicas;
    await this.markForDelete(name, [...replicas.values()].filter((e) => e.value.ordinal >= n && e.value.desired === 'run'), false);

    // Ordinals to (re)place: missing, or pending without a node.
    const toPlace: number[] = [];
    for (let i = 0; i < n; i++) {
      const e = replicas.get(i);
      if (!e || (e.value.desired === 'run' && e.value.node === '')) toPlace.push(i);
    }
    let pending = false;
    for (let i = 0; i < toPlace.length; i += TXN_BATCH) {
      const chunk = toPlace.slice(i, i + TXN_BATCH);
      if (this.plan.puts.size + 2 * chunk.length > PLAN_MAX_OPS) await this.flush();
      if (await this.placeBatch(svc, chunk, replicas)) pending = true;
    }
    if (pending) this.pending.add(name);
    else this.pending.delete(name);
    await this.moveAway(svc, this.replicasOf(name));
    await this.syncPolicy(svc, this.replicasOf(name));

    await this.rollOne(svc, this.replicasOf(name));
  }

  /** Removes assignments whose containers are gone (or never existed) and frees their node's share. */
  private async finishRemovals(name: string, replicas: Map<number, Entry<Replica>>): Promise<void> {
    for (const [ordinal, e] of replicas) {
      const r = e.value;
      if (r.desired !== 'delete') continue;
      const st = this.statusOf(name, ordinal);
      const removed = r.node === '' || (st?.state === 'removed' && st.uid === r.uid) || !this.nodes.get(r.node) ||
        !this.nodes.get(r.node)!.ready;
      if (!removed) continue;
      const compare: Compare[] = [{ key: K.replica(name, ordinal), modRevision: e.modRevision }];
      const ops: Op[] = [{ type: 'delete', key: K.replica(name, ordinal) }, { type: 'delete', key: K.status(name, ordinal) }];
      if (r.node) {
        const a = this.allocEntry(r.node);
        compare.push({ key: K.alloc(r.node), modRevision: a.modRevision });
        ops.push({ type: 'put', key: K.alloc(r.node), value: JSON.stringify(removeFromAlloc(a.value, replicaId(name, ordinal), usage(r.spec))) });
      }
      if (!(await this.commit(compare, ops))) this.conflict(name);
      replicas.delete(ordinal);
    }
  }

  private async markForDelete(name: string, entries: Entry<Replica>[], purge: boolean): Promise<void> {
    for (const e of entries) {
      const r: Replica = { ...e.value, desired: 'delete', purge };
      const key = K.replica(name, r.ordinal);
      if (!(await this.commit([{ key, modRevision: e.modRevision }], [{ type: 'put', key, value: JSON.stringify(r) }]))) {
        this.conflict(name);
      }
    }
  }

  /** Plans placements into the pending plan (committed by flush); returns whether any stay pending. */
  private async placeBatch(svc: Service, ordinals: number[], replicas: Map<number, Entry<Replica>>): Promise<boolean> {
    const name = svc.spec.name;
    const req = requestFor(svc);
    const plan = this.plan;
    const booked = new Map<string, NodeAlloc>();
    const now = new Date().toISOString();
    let unschedulable: string | undefined;
    for (const ordinal of ordinals) {
      const existing = replicas.get(ordinal);
      const nodes = this.nodes.candidates();
      const net = existing?.value.spec.network ?? (this.addresses ? await this.addresses(svc, ordinal) : undefined);
      const network = typeof net === 'string' ? undefined : net;
      const res = typeof net === 'string' ? { ok: false as const, reason: net } : this.timedPlace(nodes, req, plan.allocs.overlayFor(nodes));
      let replica: Replica;
      const base = {
        service: name, ordinal, uid: existing?.value.uid ?? randomUUID(), generation: svc.generation,
        desired: 'run' as const, createdAt: existing?.value.createdAt ?? now,
      };
      if (res.ok) {
        const cand = nodes[res.index];
        const allocKey = K.alloc(cand.name);
        if (!plan.compares.has(allocKey)) plan.compares.set(allocKey, this.allocEntry(cand.name).modRevision);
        // Book it in the plan so the plan's next placements see it.
        booked.set(cand.name, plan.allocs.book(nodes, res.index, replicaId(name, ordinal), req, res.placement));
        replica = { ...base, node: cand.name, spec: containerSpecFor(svc, res.placement, network) };
        plan.placed++;
      } else {
        unschedulable = res.reason;
        if (existing && existing.value.pendingReason === res.reason) continue;
        replica = { ...base, node: '', spec: containerSpecFor(svc, { node: '', hostPorts: [] }, network), pendingReason: res.reason };
      }
      plan.compares.set(K.replica(name, ordinal), existing?.modRevision ?? 0);
      plan.puts.set(K.replica(name, ordinal), JSON.stringify(replica));
    }
    for (const [node, alloc] of booked) plan.puts.set(K.alloc(node), JSON.stringify(alloc));
    plan.services.add(name);
    if (unschedulable) {
      metrics.placementFailures.inc();
      await this.events.record(`service/${name}`, 'Warning', 'FailedScheduling', `replica pending: ${unschedulable}`);
    }
    return unschedulable !== undefined;
  }

  private isUp(name: string, r: Replica): boolean {
    const st = this.statusOf(name, r.ordinal);
    return isCurrentStatus(r, st) && st.state === 'running' && this.nodes.get(r.node)?.ready === true;
  }

  /**
   * Replicas on lost nodes are rescheduled (with backoff) unless their service keeps
   * local data; replicas on draining nodes move one per service at a time (all at
   * once after the drain deadline). Break-before-make: a replica is one identity.
   */
  private async moveAway(svc: Service, replicas: Map<number, Entry<Replica>>): Promise<void> {
    const name = svc.spec.name;
    const active = [...replicas.values()].filter((e) => e.value.desired === 'run' && e.value.node !== '' && e.value.ordinal < svc.spec.replicas);
    for (const e of active) {
      const r = e.value;
      const id = replicaId(name, r.ordinal);
      const cand = this.nodes.get(r.node);
      const node = this.cache.get<Node>(K.node(r.node));
      const lost = !cand || !cand.ready;
      // Docker would not start it there (the agent gave up on fresh containers): place it anew.
      const st = this.statusOf(name, r.ordinal);
      const startFailed = !lost && !svc.spec.localData && st?.uid === r.uid && st.generation === r.generation &&
        st.state === 'failed' && (st.lastError?.startsWith(START_FAILED) ?? false);
      if (!lost && !node?.drain && !startFailed) continue;
      if (svc.spec.localData) {
        await this.events.record(`replica/${id}`, 'Warning', lost ? 'BoundToLostNode' : 'DrainBlocked',
          `replica owns local data on ${r.node}; it stays there until a service-level failover moves it`);
        continue;
      }
      if (lost || startFailed) {
        if (lost && this.brake.holding()) continue; // most nodes gone at once: suspect ourselves, move nothing
        if (lost) {
          const left = Math.max(this.brake.observeMs, replicaPolicy(svc, r.spec) === 'wait' ? WAIT_MARGIN_MS : 0) - this.brake.lostForMs(r.node);
          if (left > 0) {
            setTimeout(() => this.mark(name), left + 10).unref();
            continue;
          }
        }
        const wait = rescheduleDelayMs(r.reschedule?.count ?? 0) - (Date.now() - Date.parse(r.reschedule?.lastAt ?? '1970-01-01'));
        if (wait > 0) {
          setTimeout(() => this.mark(name), wait + 10).unref();
          continue;
        }
        if (lost) {
          const token = this.brake.take();
          if (!token.ok) {
            setTimeout(() => this.mark(name), token.retryMs).unref();
            continue;
          }
          metrics.evictions.inc();
        }
        await this.move(svc, e, lost ? `node ${r.node} lost` : `${st!.lastError} on ${r.node}`, true, lost);
        continue;
      }
      const pastDeadline = Date.now() > Date.parse(node!.drain!.deadline);
      if (!pastDeadline && active.some((o) => o !== e && !this.isUp(name, o.value))) continue;
      await this.move(svc, e, `node ${r.node} draining`, false);
      if (!pastDeadline) return; // at most one replica of this service down at a time
    }
  }

  /** Re-places a replica (a new incarnation); `backoff`: counts toward the delay before the next such move. */
  private async move(svc: Service, e: Entry<Replica>, why: string, backoff: boolean, lost = false): Promise<void> {
    const name = svc.spec.name;
    const r = e.value;
    const id = replicaId(name, r.ordinal);
    const req = requestFor(svc);
    const nodes = this.nodes.candidates();
    const res = this.timedPlace(nodes, req, this.plan.allocs.overlayFor(nodes));
    if (!res.ok) {
      await this.events.record(`replica/${id}`, 'Warning', 'RescheduleFailed', `${why}; no other node fits: ${res.reason}`);
      return;
    }
    const to = res.placement.node;
    const from = this.allocEntry(r.node);
    const dest = this.allocEntry(to);
    const moved: Replica = {
      ...r,
      uid: randomUUID(),
      node: to,
      generation: svc.generation,
      spec: containerSpecFor(svc, res.placement, r.spec.network),
      reschedule: { count: (r.reschedule?.count ?? 0) + (backoff ? 1 : 0), lastAt: new Date().toISOString() },
    };
    const freed = removeFromAlloc(from.value, id, usage(r.spec));
    // The same node again (placed anew there with fresh ports): one allocation write.
    const allocOps: Op[] = to === r.node
      ? [{ type: 'put', key: K.alloc(to), value: JSON.stringify(addToAlloc(freed, id, req, res.placement)) }]
      : [
          { type: 'put', key: K.alloc(r.node), value: JSON.stringify(freed) },
          { type: 'put', key: K.alloc(to), value: JSON.stringify(addToAlloc(dest.value, id, req, res.placement)) },
        ];
    const ok = await this.commit(
      [
        { key: K.replica(name, r.ordinal), modRevision: e.modRevision },
        { key: K.alloc(r.node), modRevision: from.modRevision },
        ...(to === r.node ? [] : [{ key: K.alloc(to), modRevision: dest.modRevision }]),
        // Off a lost node only while it is still lost: an agent that came back meanwhile keeps it.
        ...(lost ? [{ key: K.alive(r.node), modRevision: 0 }] : []),
      ],
      [{ type: 'put', key: K.replica(name, r.ordinal), value: JSON.stringify(moved) }, ...allocOps],
    );
    if (!ok) this.conflict(name);
    metrics.placements.inc();
    await this.events.record(`replica/${id}`, 'Normal', 'Rescheduled', `${why}: moved from ${r.node} to ${to}`);
  }

  /** Carries a changed disconnect policy to the agents (the container stays: no new generation). */
  private async syncPolicy(svc: Service, replicas: Map<number, Entry<Replica>>): Promise<void> {
    for (const e of replicas.values()) {
      const policy = replicaPolicy(svc, e.value.spec);
      if (e.value.desired !== 'run' || e.value.spec.onNodeLost === policy) continue;
      const key = K.replica(svc.spec.name, e.value.ordinal);
      const r: Replica = { ...e.value, spec: { ...e.value.spec, onNodeLost: policy } };
      if (!(await this.commit([{ key, modRevision: e.modRevision }], [{ type: 'put', key, value: JSON.stringify(r) }]))) this.conflict(svc.spec.name);
    }
  }

  /** Rolling update: moves one replica to the new generation at a time, only while all others run. */
  private async rollOne(svc: Service, replicas: Map<number, Entry<Replica>>): Promise<void> {
    const name = svc.spec.name;
    const active = [...replicas.values()].filter((e) => e.value.desired === 'run' && e.value.ordinal < svc.spec.replicas);
    const outdated = active.filter((e) => e.value.generation < svc.generation);
    if (outdated.length === 0) return;
    const isUp = (r: Replica) => this.isUp(name, r);
    // Prefer a replica that is down anyway; then the lowest ordinal.
    const pick = outdated.find((e) => !isUp(e.value) || e.value.node === '') ?? outdated[0];
    const others = active.filter((e) => e !== pick);
    if (pick.value.node !== '' && others.some((e) => e.value.node !== '' && !isUp(e.value))) return;

    const r = pick.value;
    const key = K.replica(name, r.ordinal);
    const req = requestFor(svc);
    if (r.node === '') {
      const updated: Replica = { ...r, generation: svc.generation, spec: containerSpecFor(svc, { node: '', hostPorts: [] }, r.spec.network) };
      if (!(await this.commit([{ key, modRevision: pick.modRevision }], [{ type: 'put', key, value: JSON.stringify(updated) }]))) this.conflict(name);
      return;
    }
    // Re-fit on the same node (stable identity: its data lives there).
    const a = this.allocEntry(r.node);
    const id = replicaId(name, r.ordinal);
    const freed = removeFromAlloc(a.value, id, usage(r.spec));
    const cand = this.nodes.get(r.node);
    const res = cand ? refit(cand, freed, req) : { ok: false as const, reason: 'node unknown' };
    if (!res.ok) {
      await this.events.record(`replica/${id}`, 'Warning', 'UpdateBlocked', `cannot apply generation ${svc.generation} on ${r.node}: ${res.reason}`);
      return;
    }
    const updated: Replica = { ...r, generation: svc.generation, spec: containerSpecFor(svc, res.placement, r.spec.network) };
    const ok = await this.commit(
      [{ key, modRevision: pick.modRevision }, { key: K.alloc(r.node), modRevision: a.modRevision }],
      [
        { type: 'put', key, value: JSON.stringify(updated) },
        { type: 'put', key: K.alloc(r.node), value: JSON.stringify(addToAlloc(freed, id, req, res.placement)) },
      ],
    );
    if (!ok) this.conflict(name);
    await this.events.record(`service/${name}`, 'Normal', 'RollingUpdate', `replica ${r.ordinal} → generation ${svc.generation}`);
  }
}

/**
 * The agent's side of the API (agents pull: the server never dials a node).
 * register → a node lease; heartbeat → keep-alive; assignments → a long poll
 * (Nomad-style blocking query) over the server's cache; status → replica status.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import type { CacheChange, StoreCache } from '../../controllers/cache.js';
import { K } from '../../model/keys.js';
import { NODE_NAME } from '../../model/names.js';
import { NodeHeartbeat, NodeRegister, type Node, type NodeHealth, type NodeHealthReport } from '../../model/node.js';
import { StatusReport, isCurrentStatus, type Replica, type ReplicaStatus } from '../../model/replica.js';
import { getJson } from '../../store/json.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../errors.js';
import type { Compare, Op } from '../../store/store.js';
import { newToken, nodeCredentialId, record as tokenRecord, type TokenRecord } from '../auth.js';
import { EventLimiter } from '../../controllers/events.js';
import { openEnv } from '../../secrets.js';
import { metrics } from '../../metrics.js';

const AssignmentsQuery = Type.Object(
  {
    node: Type.String({ pattern: NODE_NAME }),
    index: Type.Optional(Type.String({ maxLength: 80 })),
    wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: 'seconds to block while nothing changed' })),
    fresh: Type.Optional(Type.Boolean({ description: 'answer from a cache caught up with the store (an agent back from a partition)' })),
  },
  { additionalProperties: false },
);
const AgentEvent = Type.Object(
  {
    object: Type.String({ pattern: '^(replica|node)/[a-z0-9./-]{1,120}$' }),
    type: Type.Union([Type.Literal('Normal'), Type.Literal('Warning')]),
    reason: Type.String({ pattern: '^[A-Za-z]{1,64}$' }),
    message: Type.String({ maxLength: 64 * 1024, description: 'truncated when stored' }),
  },
  { additionalProperties: false },
);

/**
 * Per-node change counters and the per-node index of replica keys: an assignments answer
 * reads only that node's replicas, and a change wakes only the nodes it names (the one a
 * replica left and the one it went to). The epoch makes an index from another server
 * instance stale.
 */
class AssignmentVersions {
  readonly epoch = randomUUID().slice(0, 8);
  private readonly versions = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** node → its replicas' keys, and key → node (so a change needs no parse of the old value). */
  private readonly byNode = new Map<string, Set<string>>();
  private readonly nodeOf = new Map<string, string>();

  constructor(private readonly cache: StoreCache) {
    this.rebuild();
    cache.on('change', (c: CacheChange) => this.onChange(c));
    cache.on('resync', () => {
      this.rebuild();
      for (const node of [...this.waiters.keys()]) this.bump(node);
    });
  }

  private rebuild(): void {
    this.byNode.clear();
    this.nodeOf.clear();
    for (const kv of this.cache.all(K.replicas)) this.place(kv.key, (JSON.parse(kv.value) as Replica).node);
  }

  private place(key: string, node: string | undefined): void {
    const was = this.nodeOf.get(key);
    if (was === node) return;
    if (was !== undefined) {
      const set = this.byNode.get(was)!;
      set.delete(key);
      if (set.size === 0) this.byNode.delete(was);
      this.nodeOf.delete(key);
    }
    if (node) {
      let set = this.byNode.get(node);
      if (!set) this.byNode.set(node, (set = new Set()));
      set.add(key);
      this.nodeOf.set(key, node);
    }
  }

  private onChange(c: CacheChange): void {
    if (!c.key.startsWith(K.replicas)) return;
    const was = this.nodeOf.get(c.key);
    const node = c.kv ? (JSON.parse(c.kv.value) as Replica).node : undefined;
    this.place(c.key, node);
    if (was) this.bump(was);
    if (node && node !== was) this.bump(node);
  }

  /** The keys of the replicas assigned to a node. */
  keysOf(node: string): Iterable<string> {
    return this.byNode.get(node) ?? [];
  }

  private bump(node: string): void {
    this.versions.set(node, (this.versions.get(node) ?? 0) + 1);
    for (const w of this.waiters.get(node) ?? []) w();
    this.waiters.delete(node);
  }

  index(node: string): string {
    return `${this.epoch}:${this.versions.get(node) ?? 0}`;
  }

  /** Resolves when the node's assignments differ from `index`, or after waitMs. */
  async wait(node: string, index: string | undefined, waitMs: number): Promise<void> {
    if (!index || index !== this.index(node) || waitMs === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.get(node)?.delete(done);
        resolve();
      };
      const t = setTimeout(done, waitMs);
      let set = this.waiters.get(node);
      if (!set) this.waiters.set(node, (set = new Set()));
      set.add(done);
    });
  }
}

/** Writes only what matters: Docker up/down, or the log disk's use moving by a percent point or more. */
function healthChanged(prev: NodeHealth | undefined, cur: NodeHealthReport): boolean {
  if (!prev || prev.docker.up !== cur.docker.up || prev.docker.error !== cur.docker.error) return true;
  const used = (d?: NodeHealthReport['logDisk']) => (d && d.sizeBytes > 0 ? Math.floor((100 * (d.sizeBytes - d.freeBytes)) / d.sizeBytes) : -1);
  return used(prev.logDisk) !== used(cur.logDisk) || prev.logDisk?.path !== cur.logDisk?.path;
}

export function agentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store, cache } = ctx;
  const versions = new AssignmentVersions(cache);

  app.post('/v1/agent/register', {
    schema: { tags: ['agent'], summary: 'Join a new node (join token) or re-register one (its node credential)', body: NodeRegister },
  }, async (req) => {
    const body = req.body as NodeRegister;
    const p = req.principal!;
    const prev = await getJson<Node>(store, K.node(body.name));
    const compare: Compare[] = [];
    const ops: Op[] = [];
    let credential: string | undefined;
    let credRecord: TokenRecord | undefined;
    if (p.role === 'node') {
      ownNode(req, body.name);
    } else {
      // The join token only joins: a name that exists needs its own credential, or an admin's rekey.
      const cred = await ctx.auth.get(nodeCredentialId(body.name));
      if (prev && cred?.record.hash !== '') {
        throw new ConflictError(`node ${body.name} is already registered; re-registering it needs its node credential (or an admin's \`kiver node rekey ${body.name}\`)`);
      }
      credential = newToken('node');
      credRecord = tokenRecord('node', credential, body.name);
      compare.push({ key: K.node(body.name), modRevision: prev?.modRevision ?? 0 }, { key: K.token(nodeCredentialId(body.name)), modRevision: cred?.modRevision ?? 0 });
      ops.push({ type: 'put', key: K.token(nodeCredentialId(body.name)), value: JSON.stringify(credRecord) });
    }
    const lease = await store.grantLease(ctx.nodeLeaseTtl);
    const node: Node = {
      name: body.name,
      address: body.address,
      cpus: body.cpus,
      memory: body.memory,
      labels: body.labels ?? {},
      cordoned: prev?.value.cordoned ?? false,
      lease,
      registeredAt: prev?.value.registeredAt ?? new Date().toISOString(),
      dockerVersion: body.dockerVersion,
      agentVersion: body.agentVersion,
      ...(body.metricsUrl ? { metricsUrl: body.metricsUrl } : {}),
    };
    const res = await store.txn({
      compare,
      success: [
        ...ops,
        { type: 'put', key: K.node(body.name), value: JSON.stringify(node) },
        { type: 'put', key: K.alive(body.name), value: JSON.stringify({ since: new Date().toISOString() }), lease },
      ],
    });
    if (!res.succeeded) {
      await store.revokeLease(lease).catch(() => {});
      throw new ConflictError(`node ${body.name} was registered by someone else meanwhile`);
    }
    if (credRecord) ctx.auth.note(nodeCredentialId(body.name), credRecord);
    if (prev?.value.lease && prev.value.lease !== lease) await store.revokeLease(prev.value.lease).catch(() => {});
    await ctx.events.record(`node/${body.name}`, 'Normal', 'Registered', `node ${body.name} joined (${body.cpus} CPUs, ${Math.round(body.memory / 2 ** 20)} MiB)`);
    return { node: body.name, leaseTtl: ctx.nodeLeaseTtl, ...(credential ? { credential } : {}) };
  });

  app.get('/v1/agent/whoami', { schema: { tags: ['agent'], summary: 'Who the server takes this join token or node credential for' } }, async (req) => {
    const p = req.principal!;
    return { role: p.role, ...(p.node ? { node: p.node } : {}) };
  });

  app.post('/v1/agent/heartbeat', { schema: { tags: ['agent'], summary: 'Keep the node lease alive; report host health', body: NodeHeartbeat } }, async (req) => {
    const { node, health } = req.body as { node: string; health?: NodeHealthReport };
    ownNode(req, node);
    // From the cache (a heartbeat is the fleet's most frequent request); the store only when the
    // cache has not seen the node's join yet.
    const lease = cache.get<Node>(K.node(node))?.lease ?? (await getJson<Node>(store, K.node(node)))?.value.lease;
    if (lease === undefined) throw new NotFoundError(`node ${node} not registered`);
    const ttl = await store.keepAlive(lease); // NotFound when expired: the agent re-registers
    if (!cache.getKv(K.alive(node)) && !(await store.get(K.alive(node)))) throw new NotFoundError(`node ${node} lease lost`);
    metrics.heartbeats.inc({ node });
    if (health && healthChanged(cache.get<NodeHealth>(K.nodeHealth(node)), health)) {
      await store.put(K.nodeHealth(node), JSON.stringify({ ...health, node, reportedAt: new Date().toISOString() } satisfies NodeHealth));
    }
    return { leaseTtl: ttl };
  });

  app.get('/v1/agent/assignments', {
    schema: { tags: ['agent'], summary: "A node's replica assignments (blocking query)", querystring: AssignmentsQuery },
  }, async (req) => {
    const q = req.query as { node: string; index?: string; wait?: number; fresh?: boolean };
    ownNode(req, q.node);
    await versions.wait(q.node, q.index, (q.wait ?? 0) * 1000);
    if (q.fresh) await cache.sync();
    const index = versions.index(q.node);
    const replicas: (Replica & { lastRestartCount?: number })[] = [];
    for (const key of versions.keysOf(q.node)) {
      const r = cache.get<Replica>(key)!;
      // Secrets leave the store sealed and are opened only for the node that runs them.
      if (r.spec.secretEnv && Object.keys(r.spec.secretEnv).length > 0) r.spec.secretEnv = openEnv(ctx.secrets, r.service, r.spec.secretEnv);
      // The last reported restart count lets a restarted agent continue counting.
      const st = cache.get<ReplicaStatus>(K.status(r.service, r.ordinal));
      replicas.push(isCurrentStatus(r, st) ? { ...r, lastRestartCount: st.restartCount } : r);
    }
    return { index, replicas };
  });

  app.put('/v1/agent/status', { schema: { tags: ['agent'], summary: 'Report replica status', body: StatusReport } }, async (req) => {
    const body = req.body as StatusReport;
    ownNode(req, body.node);
    let accepted = 0;
    for (const s of body.statuses) {
      const cur = await store.get(K.replica(s.service, s.ordinal));
      if (!cur) continue;
      const r = JSON.parse(cur.value) as Replica;
      if (r.uid !== s.uid || r.node !== body.node) continue; // stale report about an older incarnation
      const { service: _s, ordinal: _o, ...rest } = s;
      const status: ReplicaStatus = { ...rest, node: body.node, updatedAt: new Date().toISOString() };
      // Unchanged reports cost no write: a chatty agent must not load the store.
      const prev = cache.get<ReplicaStatus>(K.status(s.service, s.ordinal));
      if (prev && JSON.stringify({ ...prev, updatedAt: '' }) === JSON.stringify({ ...status, updatedAt: '' })) {
        accepted++;
        continue;
      }
      const res = await store.txn({
        compare: [{ key: cur.key, modRevision: cur.modRevision }],
        success: [{ type: 'put', key: K.status(s.service, s.ordinal), value: JSON.stringify(status) }],
      });
      if (res.succeeded) accepted++;
    }
    return { accepted };
  });

  const limiter = new EventLimiter(ctx.log);
  app.post('/v1/agent/events', { schema: { tags: ['agent'], summary: 'Record an event about this node or a replica on it', body: AgentEvent } }, async (req, reply) => {
    const e = req.body as { object: string; type: 'Normal' | 'Warning'; reason: string; message: string };
    const node = req.principal!.node!;
    const [kind, ...rest] = e.object.split('/');
    if (kind === 'node') ownNode(req, rest.join('/'));
    else {
      const [service, ordinal] = rest;
      const r = cache.get<Replica>(K.replica(service ?? '', Number(ordinal)));
      if (!r || r.node !== node) throw new ForbiddenError(`replica ${rest.join('/')} is not assigned to node ${node}`);
    }
    limiter.take(node);
    await ctx.events.record(e.object, e.type, e.reason, e.message);
    return reply.status(204).send();
  });
}

/** A node may act only for itself (Kubernetes' NodeRestriction). */
function ownNode(req: FastifyRequest, node: string): void {
  const p = req.principal!;
  if (p.role !== 'node' || p.node !== node) throw new ForbiddenError(`this credential may not act for node ${node}`);
}

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { NODE_NAME, SERVICE_NAME } from '../../model/names.js';
import { emptyAlloc, type Node, type NodeAlloc, type NodeView } from '../../model/node.js';
import { getJson, listJson, updateJson } from '../../store/json.js';
import { NotFoundError } from '../../errors.js';
import { replicaViews } from '../views.js';
import type { KiverEvent } from '../../model/event.js';

const NodeParams = Type.Object({ name: Type.String({ pattern: NODE_NAME }) }, { additionalProperties: false });
const ReplicaQuery = Type.Object(
  { node: Type.Optional(Type.String({ pattern: NODE_NAME })), service: Type.Optional(Type.String({ pattern: SERVICE_NAME })) },
  { additionalProperties: false },
);
const DrainBody = Type.Object(
  { deadlineSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86400, description: 'after this, move the rest at once (default 3600)' })) },
  { additionalProperties: false },
);
const EventQuery = Type.Object(
  {
    object: Type.Optional(Type.String({ pattern: '^[a-z]+/[a-z0-9./-]{1,120}$', description: 'e.g. service/redis' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);

export function nodeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  async function nodeView(n: Node): Promise<NodeView> {
    const [alive, alloc] = await Promise.all([store.get(K.alive(n.name)), getJson<NodeAlloc>(store, K.alloc(n.name))]);
    return { ...n, ready: alive !== undefined, alloc: alloc?.value ?? emptyAlloc() };
  }

  app.get('/v1/nodes', { schema: { tags: ['nodes'], summary: 'List nodes' } }, async () => {
    return Promise.all((await listJson<Node>(store, K.nodes)).map(nodeView));
  });

  app.get('/v1/nodes/:name', { schema: { tags: ['nodes'], summary: 'Get a node', params: NodeParams } }, async (req) => {
    const { name } = req.params as { name: string };
    const n = await getJson<Node>(store, K.node(name));
    if (!n) throw new NotFoundError(`node ${name} not found`);
    return nodeView(n.value);
  });

  for (const [verb, cordoned] of [['cordon', true], ['uncordon', false]] as const) {
    app.post(`/v1/nodes/:name/${verb}`, {
      schema: { tags: ['nodes'], summary: cordoned ? 'Stop placing new replicas on a node' : 'Allow placements again', params: NodeParams },
    }, async (req) => {
      const { name } = req.params as { name: string };
      const n = await updateJson<Node>(store, K.node(name), `node ${name}`, (cur) => {
        const next: Node = { ...cur, cordoned };
        if (!cordoned) delete next.drain; // uncordon also ends a drain
        return next;
      });
      await ctx.events.record(`node/${name}`, 'Normal', cordoned ? 'Cordoned' : 'Uncordoned', `node ${name} ${verb}ed`);
      return nodeView(n);
    });
  }

  app.post('/v1/nodes/:name/drain', {
    schema: { tags: ['nodes'], summary: 'Cordon a node and move its replicas off, one per service at a time', params: NodeParams, body: DrainBody },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const deadline = (req.body as { deadlineSeconds?: number }).deadlineSeconds ?? 3600;
    const now = new Date();
    const n = await updateJson<Node>(store, K.node(name), `node ${name}`, (cur) => ({
      ...cur,
      cordoned: true,
      drain: { startedAt: now.toISOString(), deadline: new Date(now.getTime() + deadline * 1000).toISOString() },
    }));
    await ctx.events.record(`node/${name}`, 'Normal', 'Draining', `node ${name} draining (deadline ${deadline}s)`);
    return nodeView(n);
  });

  app.get('/v1/cluster/leader', { schema: { tags: ['cluster'], summary: 'The server that runs the controllers' } }, async () => {
    const kv = await store.get('/kiver/leader');
    if (!kv) throw new NotFoundError('no leader elected right now');
    return JSON.parse(kv.value);
  });

  app.get('/v1/replicas', { schema: { tags: ['replicas'], summary: 'List replicas', querystring: ReplicaQuery } }, async (req) => {
    const q = req.query as { node?: string; service?: string };
    const all = await replicaViews(store, q.service);
    return q.node ? all.filter((r) => r.node === q.node) : all;
  });

  app.get('/v1/events', { schema: { tags: ['events'], summary: 'Recent events, newest first', querystring: EventQuery } }, async (req) => {
    const q = req.query as { object?: string; limit?: number };
    let evs = await listJson<KiverEvent>(store, K.events);
    if (q.object) evs = evs.filter((e) => e.object === q.object || e.object.startsWith(`${q.object}/`) ||
      (q.object!.startsWith('service/') && e.object.startsWith(`replica/${q.object!.slice(8)}/`)));
    evs.sort((a, b) => (a.lastAt < b.lastAt ? 1 : -1));
    return evs.slice(0, q.limit ?? 100);
  });
}

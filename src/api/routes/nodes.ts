import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { NODE_NAME } from '../../model/names.js';
import { NodeView, emptyAlloc, isNodeReady, type Node, type NodeAlloc } from '../../model/node.js';
import { getJson, listJson, updateJson } from '../../store/json.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { nodeCredentialId } from '../auth.js';
import type { Replica } from '../../model/replica.js';

const NodeParams = Type.Object({ name: Type.String({ pattern: NODE_NAME }) }, { additionalProperties: false });
const RemoveQuery = Type.Object(
  { force: Type.Optional(Type.Boolean({ description: 'remove even with replicas placed there (they are placed elsewhere)' })) },
  { additionalProperties: false },
);
const DrainBody = Type.Object(
  { deadlineSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86400, description: 'after this, move the rest at once (default 3600)' })) },
  { additionalProperties: false },
);
export function nodeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  async function nodeView(n: Node): Promise<NodeView> {
    const [alive, alloc] = await Promise.all([store.get(K.alive(n.name)), getJson<NodeAlloc>(store, K.alloc(n.name))]);
    return { ...n, ready: isNodeReady(alive), alloc: alloc?.value ?? emptyAlloc() };
  }

  app.get('/v1/nodes', { schema: { tags: ['nodes'], summary: 'List nodes', response: { 200: Type.Array(NodeView) } } }, async () => {
    return Promise.all((await listJson<Node>(store, K.nodes)).map(nodeView));
  });

  app.get('/v1/nodes/:name', { schema: { tags: ['nodes'], summary: 'Get a node', params: NodeParams, response: { 200: NodeView } } }, async (req) => {
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
    schema: { tags: ['nodes'], summary: 'Cordon a node and move its replicas off, one per service at a time', params: NodeParams, body: DrainBody, response: { 200: NodeView } },
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

  // The node's record, liveness, allocation, health and credential go in one transaction: the
  // scheduler and the eviction brake no longer count it; a later join under the name is a new node.
  app.delete('/v1/nodes/:name', {
    schema: { tags: ['nodes'], summary: 'Remove a node from the cluster (refused while replicas are placed there, unless force)', params: NodeParams, querystring: RemoveQuery },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const { force } = req.query as { force?: boolean };
    const cur = await store.get(K.node(name));
    if (!cur) throw new NotFoundError(`node ${name} not found`);
    const placed = (await listJson<Replica>(store, K.replicas)).filter((r) => r.node === name).map((r) => `${r.service}/${r.ordinal}`);
    if (placed.length && !force) {
      throw new ConflictError(`node ${name} still has ${placed.length} replica(s) placed (${placed.slice(0, 10).join(', ')}${placed.length > 10 ? ', …' : ''}): drain it first (kiver node drain ${name}), or force the removal (they are then placed elsewhere)`);
    }
    const res = await store.txn({
      compare: [{ key: K.node(name), modRevision: cur.modRevision }],
      success: [K.node(name), K.alive(name), K.alloc(name), K.nodeHealth(name), K.token(nodeCredentialId(name))].map((key) => ({ type: 'delete' as const, key })),
    });
    if (!res.succeeded) throw new ConflictError(`node ${name} changed while being removed; try again`);
    ctx.auth.note(nodeCredentialId(name), undefined);
    await ctx.events.record(`node/${name}`, placed.length ? 'Warning' : 'Normal', 'NodeRemoved', `node ${name} removed${placed.length ? ` with ${placed.length} replica(s) placed there (forced)` : ''}`);
    return { node: name, removed: true, replicas: placed.length };
  });

}

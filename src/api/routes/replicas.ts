import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { NODE_NAME, SERVICE_NAME } from '../../model/names.js';
import { replicaViews } from '../views.js';
import { ReplicaView } from '../../model/replica.js';

const ReplicaQuery = Type.Object(
  { node: Type.Optional(Type.String({ pattern: NODE_NAME })), service: Type.Optional(Type.String({ pattern: SERVICE_NAME })) },
  { additionalProperties: false },
);
export function replicaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  app.get('/v1/replicas', { schema: { tags: ['replicas'], summary: 'List replicas', querystring: ReplicaQuery, response: { 200: Type.Array(ReplicaView) } } }, async (req) => {
    const q = req.query as { node?: string; service?: string };
    const all = await replicaViews(store, q.service);
    return q.node ? all.filter((r) => r.node === q.node) : all;
  });

}

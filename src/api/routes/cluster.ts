import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { NotFoundError } from '../../errors.js';

export function clusterRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  app.get('/v1/cluster/leader', { schema: { tags: ['cluster'], summary: 'The server that runs the controllers' } }, async () => {
    const kv = await store.get(K.leader);
    if (!kv) throw new NotFoundError('no leader elected right now');
    return JSON.parse(kv.value);
  });
}

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { listJson } from '../../store/json.js';
import type { KiverEvent } from '../../model/event.js';

const EventQuery = Type.Object(
  {
    object: Type.Optional(Type.String({ pattern: '^[a-z]+/[a-z0-9./-]{1,120}$', description: 'e.g. service/redis' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);

export function eventRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  app.get('/v1/events', { schema: { tags: ['events'], summary: 'Recent events, newest first', querystring: EventQuery } }, async (req) => {
    const q = req.query as { object?: string; limit?: number };
    let evs = await listJson<KiverEvent>(store, K.events);
    if (q.object) evs = evs.filter((e) => e.object === q.object || e.object.startsWith(`${q.object}/`) ||
      (q.object!.startsWith('service/') && e.object.startsWith(`replica/${q.object!.slice(8)}/`)));
    evs.sort((a, b) => (a.lastAt < b.lastAt ? 1 : -1));
    return evs.slice(0, q.limit ?? 100);
  });
}

/** IP pools (/v1/pools) and the agents' report of the addresses their containers hold. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { AuditView, HolderReportBody, POOL_NAME, PoolCreate, PoolView, type HolderReport } from '../../model/pool.js';
import { ForbiddenError } from '../../errors.js';
import { createPool, deletePool, getPool, listPools, poolView } from '../../ipam/pools.js';
import { auditPools, freeLeaks } from '../../ipam/audit.js';
import { canonical } from '../../ipam/address.js';
import { ipamMetrics } from '../../ipam/metrics.js';

const NameParams = Type.Object({ name: Type.String({ pattern: POOL_NAME }) }, { additionalProperties: false });
const AuditQuery = Type.Object({ pool: Type.Optional(Type.String({ pattern: POOL_NAME })) }, { additionalProperties: false });

export function poolRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  app.post('/v1/pools', { schema: { tags: ['pools'], summary: 'Create an IP pool', body: PoolCreate, response: { 201: PoolView } } }, async (req, reply) => {
    const pool = await createPool(store, req.body as PoolCreate);
    await ctx.events.record(`pool/${pool.name}`, 'Normal', 'Created', `pool ${pool.name} ${pool.cidr} created`);
    return reply.status(201).send(poolView(pool, 0));
  });

  app.get('/v1/pools', { schema: { tags: ['pools'], summary: 'List IP pools', response: { 200: Type.Array(PoolView) } } }, async () => listPools(store));

  app.get('/v1/pools/:name', { schema: { tags: ['pools'], summary: 'Get an IP pool', params: NameParams, response: { 200: PoolView } } }, async (req) =>
    getPool(store, (req.params as { name: string }).name));

  app.delete('/v1/pools/:name', { schema: { tags: ['pools'], summary: 'Delete an IP pool without allocations', params: NameParams } }, async (req, reply) => {
    const { name } = req.params as { name: string };
    await deletePool(store, name);
    await ctx.events.record(`pool/${name}`, 'Normal', 'Deleted', `pool ${name} deleted`);
    return reply.status(204).send();
  });

  app.get('/v1/pool-audit', { schema: { tags: ['pools'], summary: 'Allocated, in use, released, leaked and conflicting addresses', querystring: AuditQuery, response: { 200: AuditView } } }, async (req) =>
    (await auditPools(store, (req.query as { pool?: string }).pool)).view);

  app.post('/v1/pool-audit/reclaim', { schema: { tags: ['pools'], summary: 'Free the leaked addresses now (owner gone past its grace, held by no node)', querystring: AuditQuery, response: { 200: AuditView } } }, async (req) => {
    const a = await auditPools(store, (req.query as { pool?: string }).pool);
    const freed = await freeLeaks(store, a.leaks);
    ipamMetrics.reclaimed.inc(freed.length);
    if (freed.length) await ctx.events.record('pool/audit', 'Normal', 'Reclaimed', `freed ${freed.length} leaked address(es): ${freed.slice(0, 10).map((l) => `${l.pool}/${l.ip}`).join(', ')}`);
    return { ...a.view, reclaimed: freed.length };
  });

  // The agent's view of the addresses its containers hold: reclaim and audit trust nothing else.
  app.put('/v1/agent/addresses', { schema: { tags: ['agent'], summary: 'Report the addresses this node\'s containers hold', body: HolderReportBody } }, async (req, reply) => {
    const body = req.body as { node: string; addresses: string[] };
    const p = req.principal!;
    if (p.role !== 'node' || p.node !== body.node) throw new ForbiddenError(`this credential may not act for node ${body.node}`);
    const addresses = [...new Set(body.addresses.map((a) => canonical(a)).filter((a): a is string => a !== undefined))].sort();
    const prev = ctx.cache.get<HolderReport>(K.ipHolders(body.node));
    // Unchanged reports (and a first one that holds nothing) cost no write.
    if (prev ? JSON.stringify(prev.addresses) !== JSON.stringify(addresses) : addresses.length > 0) {
      await store.put(K.ipHolders(body.node), JSON.stringify({ node: body.node, addresses, at: new Date().toISOString() } satisfies HolderReport));
    }
    return reply.status(204).send();
  });
}

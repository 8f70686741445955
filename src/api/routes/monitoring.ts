/**
 * Monitoring: the cluster health code (/v1/health), Prometheus http_sd targets,
 * where the monitoring pair runs, and the alert receiver's notification records.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import type { Node } from '../../model/node.js';
import { AlertRecordCreate, AlertRecordResult, MonitoringConfig, type AlertRecord } from '../../model/monitoring.js';
import { createJson, getJson, listJson, updateJson } from '../../store/json.js';
import { NotFoundError } from '../../errors.js';

const AlertId = Type.Object({ id: Type.String({ pattern: '^[a-f0-9]{16,64}$' }) }, { additionalProperties: false });
const AlertsQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false });

/** host:port and path of a URL, for one http_sd target group. */
function target(url: string, labels: Record<string, string>) {
  const u = new URL(url);
  return { targets: [u.host], labels: { __scheme__: u.protocol.replace(':', ''), __metrics_path__: u.pathname === '/' ? '/metrics' : u.pathname, ...labels } };
}

export function monitoringRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  app.get('/v1/health', { schema: { tags: ['monitoring'], summary: 'Cluster health code, its text and every problem found' } }, async () => ctx.health());

  app.get('/v1/monitoring/targets', {
    schema: { tags: ['monitoring'], summary: "Prometheus http_sd_configs: every live server's and every agent's /metrics" },
  }, async () => {
    const servers = await listJson<{ url: string }>(store, K.serverMembers);
    const nodes = await listJson<Node>(store, K.nodes);
    return [
      ...servers.map((s) => target(s.url, { kiver_role: 'server' })),
      ...nodes.filter((n) => n.metricsUrl).map((n) => target(n.metricsUrl!, { kiver_role: 'agent', node: n.name })),
    ];
  });

  app.get('/v1/monitoring/config', { schema: { tags: ['monitoring'], summary: 'Where the monitoring pair runs' } }, async () => {
    const cur = await getJson<MonitoringConfig>(store, K.monitoring);
    if (!cur) throw new NotFoundError('no monitoring pair registered (kiver monitoring up registers one)');
    return cur.value;
  });
  app.put('/v1/monitoring/config', { schema: { tags: ['monitoring'], summary: 'Register the monitoring pair (health checks probe it)', body: MonitoringConfig } }, async (req) => {
    await store.put(K.monitoring, JSON.stringify(req.body));
    return req.body;
  });

  app.get('/v1/alerts', { schema: { tags: ['monitoring'], summary: 'Notifications the alert receiver sent, newest first', querystring: AlertsQuery } }, async (req) => {
    const { limit = 100 } = req.query as { limit?: number };
    const all = await listJson<AlertRecord>(store, K.alerts);
    return all.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).slice(0, limit);
  });
  // Create-only: the first receiver to claim a notification sends it; a second claim is a duplicate (409).
  app.post('/v1/alerts', { schema: { tags: ['monitoring'], summary: 'Claim a notification before sending it (409 = already claimed)', body: AlertRecordCreate } }, async (req, reply) => {
    const body = req.body as AlertRecordCreate;
    const now = new Date().toISOString();
    const rec: AlertRecord = { ...body, state: 'sending', attempts: 0, createdAt: now, updatedAt: now };
    await createJson(store, K.alert(body.id), rec, `notification ${body.id} (a duplicate)`);
    return reply.status(201).send(rec);
  });
  app.put('/v1/alerts/:id', { schema: { tags: ['monitoring'], summary: 'Record how sending went', params: AlertId, body: AlertRecordResult } }, async (req) => {
    const { id } = req.params as { id: string };
    return updateJson<AlertRecord>(store, K.alert(id), `notification ${id}`, (cur) => ({ ...cur, ...(req.body as AlertRecordResult), updatedAt: new Date().toISOString() }));
  });
}

/** The HTTP API: fastify, a JSON schema on every input, bearer auth, one error mapping. */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { ApiContext } from './context.js';
import { errorHandler } from './errors.js';
import { serviceCatalogRoutes } from './routes/service-catalog.js';
import { serviceRoutes } from './routes/services.js';
import { nodeRoutes } from './routes/nodes.js';
import { replicaRoutes } from './routes/replicas.js';
import { eventRoutes } from './routes/events.js';
import { clusterRoutes } from './routes/cluster.js';
import { agentRoutes } from './routes/agent.js';
import { machineRoutes } from './routes/machines.js';
import { monitoringRoutes } from './routes/monitoring.js';
import { UnauthenticatedError, ForbiddenError, UnavailableError } from '../errors.js';
import { registry, metrics } from '../metrics.js';
import type { Principal } from './auth.js';
import { tokenRoutes } from './routes/tokens.js';
import { backupRoutes } from './routes/backups.js';
import { poolRoutes } from './routes/pools.js';
import { PORTAL_HTML, PORTAL_JS } from '../portal/page.js';

/** No token: health, metrics, and the portal's static page and script (they hold no data). */
const PUBLIC = new Set(['/healthz', '/readyz', '/metrics', '/', '/ui/', '/ui/app.js']);
const PORTAL_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

/**
 * Bodies are validated strictly (no type coercion: "3" is not a replica count, and
 * unknown fields are errors, not silently dropped); query strings and path params
 * arrive as text, so those alone are coerced.
 */
function validators() {
  const opts = { allErrors: false, removeAdditional: false as const, useDefaults: false, strict: false };
  const body = new Ajv({ ...opts, coerceTypes: false });
  const text = new Ajv({ ...opts, coerceTypes: true });
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? body : text).compile(schema);
}

/**
 * What each role may call (the agent routes check, besides, that a node acts only for itself).
 * Agent routes take a node credential, not an admin token: an assignment carries opened secrets.
 */
function authorize(p: Principal, method: string, path: string): void {
  const agentRoute = path.startsWith('/v1/agent/');
  switch (p.role) {
    case 'admin':
      if (agentRoute) throw new ForbiddenError('agent routes take a node credential, not an admin token');
      return;
    case 'viewer':
      if (agentRoute || path.startsWith('/v1/tokens') || /^\/v1\/services\/[^/]+\/credentials/.test(path)) throw new ForbiddenError('a viewer token may not read this');
      if (method !== 'GET' && method !== 'HEAD') throw new ForbiddenError('a viewer token is read-only');
      return;
    case 'agent':
      if (!(method === 'POST' && path === '/v1/agent/register') && !(method === 'GET' && path === '/v1/agent/whoami')) {
        throw new ForbiddenError('a join token may only register a new node (POST /v1/agent/register)');
      }
      return;
    case 'node':
      if (!agentRoute) throw new ForbiddenError('a node credential may only call /v1/agent/ routes');
      return;
  }
}

export async function buildApi(ctx: ApiContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, ajv: undefined });
  app.setValidatorCompiler(validators());
  app.setErrorHandler(errorHandler(ctx.log));
  await app.register(swagger, {
    openapi: {
      info: { title: 'Kiver API', version: '0.1.0', description: 'Bearer token auth on every route but /healthz and /metrics.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    if (PUBLIC.has(path)) return;
    // A server cut off from its store says so at once, so agents move to another server
    // instead of waiting out the store client's retries (their leases would lapse).
    if (path.startsWith('/v1/agent/') && ctx.probe && !ctx.probe.ok) throw new UnavailableError(`this server cannot reach its store: ${ctx.probe.reason}`);
    // The config center: installing machines hold only their one-time install token,
    // which its routes check themselves. Matched by route pattern, not by raw URL.
    if (req.routeOptions.url?.startsWith('/v1/config-center/')) return;
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) throw new UnauthenticatedError('missing bearer token (Authorization: Bearer <token>)');
    const principal = await ctx.auth.verify(m[1]);
    if (!principal) throw new UnauthenticatedError('invalid or revoked token');
    // By the matched route pattern, not the raw URL (percent-encoding cannot dodge a rule).
    authorize(principal, req.method, req.routeOptions.url ?? path);
    req.principal = principal;
  });
  app.addHook('onResponse', async (req, reply) => {
    const labels = { method: req.method, route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) };
    metrics.apiRequests.inc(labels);
    metrics.apiSeconds.observe(labels, reply.elapsedTime / 1000);
    if (reply.elapsedTime > 1000 && !req.url.startsWith('/v1/agent/assignments')) {
      ctx.log.warn({ method: req.method, route: req.routeOptions.url, ms: Math.round(reply.elapsedTime) }, 'slow API request');
    }
  });

  // Liveness: the process answers. Readiness: it can also reach its store (and says who leads).
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const ready = ctx.probe?.ok ?? true;
    const leader = ctx.probe?.value ? (JSON.parse(ctx.probe.value) as { id: string; url: string }) : undefined;
    const body = { ready, store: ready ? 'reachable' : ctx.probe!.reason, leader: leader ? { id: leader.id, url: leader.url } : null };
    return reply.status(ready ? 200 : 503).send(body);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) =>
    reply.header('content-type', 'text/html; charset=utf-8').header('content-security-policy', PORTAL_CSP).send(PORTAL_HTML));
  app.get('/ui/app.js', { schema: { hide: true } }, async (_req, reply) =>
    reply.header('content-type', 'text/javascript; charset=utf-8').send(PORTAL_JS));

  serviceRoutes(app, ctx);
  serviceCatalogRoutes(app, ctx);
  nodeRoutes(app, ctx);
  replicaRoutes(app, ctx);
  eventRoutes(app, ctx);
  clusterRoutes(app, ctx);
  agentRoutes(app, ctx);
  tokenRoutes(app, ctx);
  monitoringRoutes(app, ctx);
  backupRoutes(app, ctx);
  poolRoutes(app, ctx);
  await machineRoutes(app, ctx);
  return app;
}

/**
 * Auth on every route: each path and method the OpenAPI document lists (plus the
 * routes it hides, and an unknown route) is called with every kind of credential,
 * and the status must be what that credential may get. A route group that forgot
 * auth, or a join token that reaches admin routes, fails here by route name.
 *
 * To add a credential kind, add one row to
 * CREDENTIALS: how to obtain it, and the expectation per route.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';

/** One route as the test calls it. */
interface Route {
  method: string;
  /** The OpenAPI path template, e.g. /v1/services/{name}. */
  path: string;
  /** Documented as needing no API token (`security: []`, or hidden public pages). */
  public: boolean;
  /** An agent route (/v1/agent/: node credentials; the join token only joins). */
  agent: boolean;
}

/** What a credential may get on a route: 'pass' = auth let it through (any status but 401/403). */
type Expect = 401 | 403 | 'pass';

interface Credential {
  kind: string;
  /** The Authorization header value, or undefined to send none. */
  header(server: KiverServer): string | undefined;
  expect(route: Route): Expect;
}

/** Issued in before(): a node credential (from a join) and a viewer token. */
const issued = { node: '', viewer: '' };
/** What the join token may do: join (register a new node) and check itself. */
const joinOnly = (r: Route) => (r.method === 'POST' && r.path === '/v1/agent/register') || (r.method === 'GET' && r.path === '/v1/agent/whoami');
const isGet = (r: Route) => r.method === 'GET' || r.method === 'HEAD';

const CREDENTIALS: Credential[] = [
  { kind: 'no token', header: () => undefined, expect: (r) => (r.public ? 'pass' : 401) },
  { kind: 'wrong token', header: () => 'Bearer kiver_admin_wrongwrongwrongwrongwrongwrong', expect: (r) => (r.public ? 'pass' : 401) },
  { kind: 'malformed header', header: (s) => `Basic ${s.tokens.admin}`, expect: (r) => (r.public ? 'pass' : 401) },
  { kind: 'join token', header: (s) => `Bearer ${s.tokens.join}`, expect: (r) => (r.public || joinOnly(r) ? 'pass' : 403) },
  // Agent routes carry opened secrets: they take a node credential, never an admin token.
  { kind: 'admin token', header: (s) => `Bearer ${s.tokens.admin}`, expect: (r) => (r.public || !r.agent ? 'pass' : 403) },
  { kind: 'node credential', header: () => `Bearer ${issued.node}`, expect: (r) => (r.public || r.agent ? 'pass' : 403) },
  {
    kind: 'viewer token', header: () => `Bearer ${issued.viewer}`,
    // Viewers read everything but tokens and a managed service's generated credentials.
    expect: (r) => (r.public || (isGet(r) && !r.agent && !r.path.startsWith('/v1/tokens') && !r.path.endsWith('/credentials')) ? 'pass' : 403),
  },
];

/** Routes the OpenAPI document hides on purpose, with whether they are public. */
const HIDDEN: Route[] = [
  { method: 'GET', path: '/healthz', public: true, agent: false },
  { method: 'GET', path: '/metrics', public: true, agent: false },
  { method: 'GET', path: '/', public: true, agent: false },
  { method: 'GET', path: '/ui/', public: true, agent: false },
  { method: 'GET', path: '/ui/app.js', public: true, agent: false },
  { method: 'GET', path: '/v1/openapi.json', public: false, agent: false },
  // Unknown routes: auth first, so a stranger cannot map the API by its 404s.
  { method: 'GET', path: '/v1/no-such-route', public: false, agent: false },
  { method: 'DELETE', path: '/v1/nodes/{name}/no-such-verb', public: false, agent: false },
  { method: 'GET', path: '/v1/agent/no-such-route', public: false, agent: true },
];

/** A concrete URL for a path template: every {param} becomes a name that exists nowhere. */
function urlOf(path: string): string {
  return path.replace(/\{[^}]+\}/g, 'auth-probe');
}

describe('auth on every route', () => {
  let dir: string;
  let server: KiverServer;
  let routes: Route[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-auth-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
    const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    const doc = await admin.get<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>('/v1/openapi.json');
    routes = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        routes.push({ method: method.toUpperCase(), path, public: Array.isArray(op.security) && op.security.length === 0, agent: path.startsWith('/v1/agent/') });
      }
    }
    routes.push(...HIDDEN);
    const joiner = new ApiClient({ servers: [server.url], token: server.tokens.join });
    issued.node = (await joiner.post<{ credential: string }>('/v1/agent/register', { name: 'auth-node', address: '127.0.0.1', cpus: 1, memory: 2 ** 30 })).credential;
    issued.viewer = (await admin.post<{ token: string }>('/v1/tokens', { role: 'viewer' })).token;
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the OpenAPI document lists every resource group (so the loop below covers them)', () => {
    const groups = new Set(routes.map((r) => r.path.split('/')[2]));
    for (const g of ['services', 'nodes', 'replicas', 'events', 'cluster', 'agent', 'machines', 'config-center', 'catalog', 'backups', 'backup-targets', 'backup-policies']) assert.ok(groups.has(g), `no ${g} routes in /v1/openapi.json`);
    assert.ok(routes.length >= 30, `only ${routes.length} routes`);
  });

  it('every route answers each credential kind with the expected status', async () => {
    const wrong: string[] = [];
    for (const route of routes) {
      for (const cred of CREDENTIALS) {
        const auth = cred.header(server);
        const withBody = ['POST', 'PUT', 'PATCH'].includes(route.method);
        const res = await fetch(`${server.url}${urlOf(route.path)}`, {
          method: route.method,
          redirect: 'manual',
          headers: { ...(auth ? { authorization: auth } : {}), ...(withBody ? { 'content-type': 'application/json' } : {}) },
          body: withBody ? '{}' : undefined,
        });
        await res.arrayBuffer();
        const want = cred.expect(route);
        const ok = want === 'pass' ? res.status !== 401 && res.status !== 403 : res.status === want;
        // Public routes may refuse on their own terms (the config center's install token: 403), never 401.
        const okPublic = route.public && want === 'pass' ? res.status !== 401 : ok;
        if (!(route.public ? okPublic : ok)) wrong.push(`${route.method} ${route.path} with ${cred.kind}: ${res.status}, want ${want === 'pass' ? 'not 401/403' : want}`);
      }
    }
    assert.deepEqual(wrong, []);
  });
});

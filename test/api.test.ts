/**
 * The API server with its embedded store and controllers, no agent: input
 * validation (400 naming the field, nothing stored), auth (401/403), and the
 * commit path under concurrency (no over-commit; last scale wins whole).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { K } from '../src/model/keys.js';
import type { NodeView } from '../src/model/node.js';
import type { ServiceView } from '../src/model/service.js';
import { until } from './harness/kiver.js';

const GiB = 1024 ** 3;

describe('API', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  let agent: ApiClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-api-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    agent = new ApiClient({ servers: [server.url], token: server.tokens.join });
    // Three fake nodes of 2 CPUs / 4 GiB: registered through the agent API, no containers run.
    for (const name of ['n1', 'n2', 'n3']) {
      await agent.post('/v1/agent/register', { name, address: '127.0.0.1', cpus: 2, memory: 4 * GiB });
    }
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Plays the agents of n1..n3: reports assigned replicas running and deleted ones removed. */
  async function fakeAgents(): Promise<void> {
    for (const node of ['n1', 'n2', 'n3']) {
      const a = await agent.get<{ replicas: { service: string; ordinal: number; uid: string; generation: number; desired: string }[] }>(`/v1/agent/assignments?node=${node}`);
      const statuses = a.replicas.map((r) => ({
        service: r.service, ordinal: r.ordinal, uid: r.uid, generation: r.generation,
        state: r.desired === 'delete' ? 'removed' : 'running', restartCount: 0,
      }));
      await agent.put('/v1/agent/status', { node, statuses });
    }
  }

  async function raw(method: string, path: string, body?: string, token: string | null = server.tokens.admin) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body,
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as { error?: { field?: string; message: string } } };
  }

  it('writes the admin token with mode 0600 and refuses missing or wrong tokens', async () => {
    assert.equal((await stat(server.tokens.adminTokenFile)).mode & 0o777, 0o600);
    assert.equal((await raw('GET', '/v1/services', undefined, null)).status, 401);
    assert.equal((await raw('GET', '/v1/services', undefined, 'kiver_admin_wrong')).status, 401);
    assert.equal((await raw('GET', '/v1/services', undefined, server.tokens.join)).status, 403, 'join token is for agents only');
    assert.equal((await raw('GET', '/healthz', undefined, null)).status, 200);
    const metrics = await fetch(`${server.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /kiver_api_requests_total/);
  });

  it('serves OpenAPI with every resource', async () => {
    const doc = await admin.get<{ openapi: string; paths: Record<string, unknown> }>('/v1/openapi.json');
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/v1/services', '/v1/services/{name}', '/v1/services/{name}/scale', '/v1/nodes', '/v1/replicas', '/v1/events']) {
      assert.ok(doc.paths[p], `${p} documented`);
    }
  });

  const bad: [string, string, string, RegExp][] = [
    ['malformed JSON', 'POST /v1/services', '{"name": "x", ', /^body$/],
    ['unknown field', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","replcas":3}', /^replcas$/],
    ['negative replicas', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","replicas":-1}', /^replicas$/],
    ['absurd replicas', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","replicas":1000000}', /^replicas$/],
    ['replicas as a string', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","replicas":"3"}', /^replicas$/],
    ['fractional replicas', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","replicas":1.5}', /^replicas$/],
    ['unknown CPU policy', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","cpuPolicy":"turbo"}', /^cpuPolicy$/],
    ['cpuset with a fraction', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","cpu":1.5,"cpuPolicy":"cpuset"}', /^cpu$/],
    ['zero cpu', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","cpu":0}', /^cpu$/],
    ['tiny memory', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","memory":1}', /^memory$/],
    ['invalid image reference', 'POST /v1/services', '{"name":"x","image":"Not An/Image::"}', /^image$/],
    ['path traversal in name', 'POST /v1/services', '{"name":"../etc","image":"kiver/busybox"}', /^name$/],
    ['odd bytes in name', 'POST /v1/services', '{"name":"a\\u0000b","image":"kiver/busybox"}', /^name$/],
    ['upper case name', 'POST /v1/services', '{"name":"Web","image":"kiver/busybox"}', /^name$/],
    ['bad env name', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","env":{"A-B":"1"}}', /^env/],
    ['port out of range', 'POST /v1/services', '{"name":"x","image":"kiver/busybox","ports":[{"container":70000}]}', /^ports\/0\/container$/],
    ['missing image', 'POST /v1/services', '{"name":"x"}', /^image$/],
    ['body is not an object', 'POST /v1/services', '[1,2]', /^body$/],
    ['scale unknown field', 'PUT /v1/services/x/scale', '{"replicas":2,"force":true}', /^force$/],
    ['scale negative', 'PUT /v1/services/x/scale', '{"replicas":-3}', /^replicas$/],
    ['traversal in path', 'GET /v1/services/..%2F..%2Fetc', '', /^params\/name$/],
    ['bad query', 'GET /v1/events?limit=0', '', /^querystring\/limit$/],
  ];
  for (const [what, route, body, field] of bad) {
    it(`400 for ${what}, naming the field, storing nothing`, async () => {
      const [method, path] = route.split(' ');
      const before_ = await server.store.revision();
      const res = await raw(method, path, body || undefined);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.error?.field ?? '', field, JSON.stringify(res.body));
      assert.ok(res.body.error!.message.length > 5);
      assert.equal((await server.store.list(K.services)).kvs.length, 0, 'nothing stored');
      // Only events (none for rejected input) could have been written.
      assert.equal(await server.store.revision(), before_);
    });
  }

  it('secret env is encrypted at rest, never returned, and opened only for the agent of its node', async () => {
    const secret = 'p@ss"w0rd\\with-quotes';
    const created = await admin.post<ServiceView>('/v1/services', { name: 'sec', image: 'kiver/busybox', replicas: 1, cpu: 0.1, memory: 2 ** 26, secretEnv: { DB_PASSWORD: secret } });
    assert.deepEqual(created.spec.secretEnv, { DB_PASSWORD: '(set)' });
    const got = await admin.get<ServiceView>('/v1/services/sec');
    assert.ok(!JSON.stringify(got).includes(secret), 'API never returns the value');
    const raw = (await server.store.list('/kiver/')).kvs.map((kv) => kv.value).join('\n');
    assert.ok(!raw.includes('p@ss'), 'store holds no plaintext');
    const node = await until('placed', async () => (await admin.get<ServiceView>('/v1/services/sec')).replicas[0]?.node);
    const a = await agent.get<{ replicas: { spec: { secretEnv?: Record<string, string> } }[] }>(`/v1/agent/assignments?node=${node}`);
    assert.equal(a.replicas.find((r) => r.spec.secretEnv?.DB_PASSWORD)?.spec.secretEnv?.DB_PASSWORD, secret);
    await admin.delete('/v1/services/sec');
    await until('sec deleted', async () => {
      await fakeAgents();
      return (await admin.get<ServiceView[]>('/v1/services')).every((s) => s.name !== 'sec');
    });
  });

  it('409 for a duplicate service, 404 for an unknown one', async () => {
    await admin.post('/v1/services', { name: 'dup', image: 'kiver/busybox', replicas: 0 });
    assert.equal((await raw('POST', '/v1/services', '{"name":"dup","image":"kiver/busybox"}')).status, 409);
    assert.equal((await raw('GET', '/v1/services/nope')).status, 404);
    await admin.delete('/v1/services/dup');
  });

  it('spreads 3 replicas over 3 nodes and reports pending replicas with the reason', async () => {
    await admin.post('/v1/services', { name: 'spread', image: 'kiver/busybox', replicas: 3, cpu: 1, memory: GiB });
    const s = await until('placed', async () => {
      const v = await admin.get<ServiceView>('/v1/services/spread');
      return v.replicas.length === 3 && v.replicas.every((r) => r.node) ? v : false;
    });
    assert.deepEqual(s.replicas.map((r) => r.node).sort(), ['n1', 'n2', 'n3']);
    await admin.post('/v1/services', { name: 'huge', image: 'kiver/busybox', replicas: 1, cpu: 64, memory: GiB });
    const h = await until('pending', async () => {
      const v = await admin.get<ServiceView>('/v1/services/huge');
      return v.replicas[0]?.state === 'pending' ? v.replicas[0] : false;
    });
    assert.match(h.lastError!, /0\/3 nodes fit: 3 not enough CPU/);
    await admin.delete('/v1/services/huge');
    await admin.delete('/v1/services/spread');
    await until('deleted once the agents confirm removal', async () => {
      await fakeAgents();
      return (await admin.get<ServiceView[]>('/v1/services')).length === 0;
    });
  });

  it('concurrent creates and scales never over-commit a node; the last scale wins whole', async () => {
    // 6 CPUs in all; each replica takes 0.5 → at most 12 replicas can be placed.
    await Promise.all(Array.from({ length: 6 }, (_, i) => admin.post('/v1/services', { name: `c${i}`, image: 'kiver/busybox', replicas: 1, cpu: 0.5, memory: 64 * 2 ** 20 })));
    const targets = [4, 2, 5, 3];
    await Promise.all(targets.flatMap((n) => [admin.put('/v1/services/c0/scale', { replicas: n }), admin.put('/v1/services/c1/scale', { replicas: 6 - n })]));
    await server.controller.idle();
    const c0 = await admin.get<ServiceView>('/v1/services/c0');
    assert.ok(targets.includes(c0.spec.replicas), `c0 final replicas ${c0.spec.replicas} is one of the requests`);
    const checkAllocs = async () => {
      const nodes = await admin.get<NodeView[]>('/v1/nodes');
      let placed = 0;
      for (const n of nodes) {
        assert.ok(n.alloc.cpuMilli <= n.cpus * 1000, `${n.name} CPU over-committed: ${n.alloc.cpuMilli}`);
        assert.ok(n.alloc.memory <= n.memory);
        placed += n.alloc.replicas.length;
      }
      const reps = await admin.get<{ node: string; desired: string }[]>('/v1/replicas');
      assert.equal(placed, reps.filter((r) => r.node).length, 'node allocations match placed replicas');
      assert.ok(placed <= 12);
      // The allocation of each node equals the sum of its replicas' requests.
      for (const n of nodes) assert.equal(n.alloc.cpuMilli, n.alloc.replicas.length * 500);
    };
    await checkAllocs();

    // Which of concurrent requests is last is up to the server; so, in a known order: each
    // scale is accepted before the next is sent, while the controller is still acting on
    // the previous ones. The replica set must end exactly at the last count.
    const last = { c0: 2, c1: 3 };
    for (const [c0n, c1n] of [[5, 1], [1, 5], [4, 2], [last.c0, last.c1]]) {
      await admin.put('/v1/services/c0/scale', { replicas: c0n });
      await admin.put('/v1/services/c1/scale', { replicas: c1n });
    }
    for (const [name, n] of Object.entries(last)) {
      const s = await until(`${name}: exactly ${n} replicas, all placed`, async () => {
        await fakeAgents(); // confirms the removals
        const v = await admin.get<ServiceView>(`/v1/services/${name}`);
        return v.replicas.length === n && v.replicas.every((r) => r.node && r.desired === 'run') ? v : false;
      }, 30_000);
      assert.equal(s.spec.replicas, n);
      assert.deepEqual(s.replicas.map((r) => r.ordinal), Array.from({ length: n }, (_, i) => i), `${name}: ordinals 0..${n - 1}`);
    }
    await checkAllocs();
  });
});

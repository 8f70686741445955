/**
 * Who may do what (issue 9): the join token only joins; each node acts only for
 * itself with its own credential; re-registering a name needs that node's
 * credential or an admin's rekey; viewer tokens read without secrets and change
 * nothing; tokens are listed, created, revoked and rotated by admins; agent
 * events are rate-limited per node. The server is real (embedded store), the
 * agents are plain HTTP clients.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { K } from '../src/model/keys.js';
import type { ServiceView } from '../src/model/service.js';
import { until } from './harness/kiver.js';

const GiB = 1024 ** 3;
const reg = (name: string, extra: Record<string, unknown> = {}) => ({ name, address: '127.0.0.1', cpus: 2, memory: 4 * GiB, ...extra });

describe('node credentials and roles', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const creds = new Map<string, string>();

  async function raw(method: string, path: string, token: string | null, body?: unknown) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json: unknown;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, body: json as Record<string, unknown> & { error?: { message: string; field?: string } }, text };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-nodeauth-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    for (const name of ['na', 'nb']) {
      const res = await raw('POST', '/v1/agent/register', server.tokens.join, reg(name));
      assert.equal(res.status, 200, res.text);
      assert.match(String(res.body.credential), /^kiver_node_/);
      creds.set(name, String(res.body.credential));
    }
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores node credentials only as hashes', async () => {
    const all = (await server.store.list(K.root)).kvs.map((kv) => kv.value).join('\n');
    for (const c of creds.values()) assert.ok(!all.includes(c), 'no plaintext credential in the store');
  });

  it('the join token cannot read assignments, heartbeat, report status or events', async () => {
    const j = server.tokens.join;
    const who = await raw('GET', '/v1/agent/whoami', j);
    assert.deepEqual([who.status, who.body], [200, { role: 'agent' }], 'it may ask what it is (node init checks a join token this way)');
    assert.deepEqual((await raw('GET', '/v1/agent/whoami', creds.get('na')!)).body, { role: 'node', node: 'na' });
    assert.equal((await raw('GET', '/v1/agent/assignments?node=na', j)).status, 403);
    assert.equal((await raw('POST', '/v1/agent/heartbeat', j, { node: 'na' })).status, 403);
    assert.equal((await raw('PUT', '/v1/agent/status', j, { node: 'na', statuses: [] })).status, 403);
    assert.equal((await raw('POST', '/v1/agent/events', j, { object: 'node/na', type: 'Normal', reason: 'X', message: 'x' })).status, 403);
  });

  it("node A cannot act for node B; B's secrets reach only B", async () => {
    const a = creds.get('na')!;
    const b = creds.get('nb')!;
    const secret = 'hunter2-only-for-b';
    await admin.post('/v1/services', { name: 'sec', image: 'kiver/busybox', replicas: 2, cpu: 0.1, memory: 2 ** 26, secretEnv: { DB_PASSWORD: secret } });
    await until('placed on both', async () => (await admin.get<ServiceView>('/v1/services/sec')).replicas.filter((r) => r.node).length === 2);
    const mine = await raw('GET', '/v1/agent/assignments?node=nb', b);
    assert.equal(mine.status, 200);
    assert.ok(mine.text.includes(secret), 'B reads its own secret');
    const stolen = await raw('GET', '/v1/agent/assignments?node=nb', a);
    assert.equal(stolen.status, 403);
    assert.ok(!stolen.text.includes(secret));
    assert.equal((await raw('POST', '/v1/agent/heartbeat', a, { node: 'nb' })).status, 403);
    assert.equal((await raw('PUT', '/v1/agent/status', a, { node: 'nb', statuses: [] })).status, 403);
    assert.equal((await raw('POST', '/v1/agent/events', a, { object: 'node/nb', type: 'Warning', reason: 'Forged', message: 'x' })).status, 403);
    const rb = (await admin.get<ServiceView>('/v1/services/sec')).replicas.find((r) => r.node === 'nb')!;
    assert.equal((await raw('POST', '/v1/agent/events', a, { object: `replica/sec/${rb.ordinal}`, type: 'Warning', reason: 'Forged', message: 'x' })).status, 403);
    assert.equal((await raw('POST', '/v1/agent/events', b, { object: `replica/sec/${rb.ordinal}`, type: 'Normal', reason: 'Fine', message: 'x' })).status, 204);
    assert.equal((await raw('POST', '/v1/agent/register', a, reg('nb', { address: '10.6.6.6' }))).status, 403);
    // Nor can admins read assignments: those carry opened secrets.
    assert.equal((await raw('GET', '/v1/agent/assignments?node=nb', server.tokens.admin)).status, 403);
  });

  it('re-registering a name needs its credential or an admin rekey; capacity is bounded', async () => {
    const hijack = await raw('POST', '/v1/agent/register', server.tokens.join, reg('na', { address: '10.6.6.6', cpus: 4096 }));
    assert.equal(hijack.status, 409, hijack.text);
    assert.match(hijack.body.error!.message, /kiver node rekey na/);
    assert.equal((await admin.get<{ address: string }>('/v1/nodes/na')).address, '127.0.0.1', 'unchanged');
    // Its own credential re-registers it (an agent restart) and gets no new credential.
    const again = await raw('POST', '/v1/agent/register', creds.get('na')!, reg('na', { cpus: 3 }));
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.credential, undefined);
    for (const [field, body] of [['cpus', reg('nx', { cpus: 4097 })], ['memory', reg('nx', { memory: 64 * 1024 ** 4 + 1 })]] as const) {
      const r = await raw('POST', '/v1/agent/register', server.tokens.join, body);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error!.field, field);
    }
    // Rekey: the old credential is dead (401), the join token may register the name once more.
    const old = creds.get('na')!;
    assert.equal((await raw('POST', '/v1/nodes/na/rekey', server.tokens.admin)).status, 200);
    assert.equal((await raw('POST', '/v1/agent/heartbeat', old, { node: 'na' })).status, 401);
    const rejoin = await raw('POST', '/v1/agent/register', server.tokens.join, reg('na'));
    assert.equal(rejoin.status, 200, rejoin.text);
    creds.set('na', String(rejoin.body.credential));
    assert.equal((await raw('POST', '/v1/agent/heartbeat', creds.get('na')!, { node: 'na' })).status, 200);
    assert.equal((await raw('POST', '/v1/agent/register', server.tokens.join, reg('na'))).status, 409, 'only once');
  });

  it('viewer tokens read everything but secrets and change nothing; admins manage tokens', async () => {
    const created = await raw('POST', '/v1/tokens', server.tokens.admin, { role: 'viewer', id: 'portal' });
    assert.equal(created.status, 201, created.text);
    const viewer = String(created.body.token);
    for (const p of ['/v1/services', '/v1/services/sec', '/v1/nodes', '/v1/replicas', '/v1/events']) {
      const r = await raw('GET', p, viewer);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assert.ok(!r.text.includes('hunter2'), `${p} shows no secret`);
    }
    assert.equal((await raw('GET', '/v1/agent/assignments?node=nb', viewer)).status, 403);
    const encoded = await raw('GET', '/v1/%61gent/assignments?node=nb', viewer);
    assert.ok(encoded.status === 403 || encoded.status === 404, `percent-encoding does not dodge the rule: ${encoded.status}`);
    assert.ok(!encoded.text.includes('hunter2'));
    assert.equal((await raw('GET', '/v1/tokens', viewer)).status, 403);
    assert.equal((await raw('POST', '/v1/services', viewer, { name: 'v', image: 'kiver/busybox' })).status, 403);
    assert.equal((await raw('DELETE', '/v1/services/sec', viewer)).status, 403);
    assert.equal((await raw('POST', '/v1/nodes/na/cordon', viewer)).status, 403);
    assert.equal((await raw('POST', '/v1/tokens', viewer, { role: 'admin' })).status, 403);

    const ls = await raw('GET', '/v1/tokens', server.tokens.admin);
    assert.equal(ls.status, 200);
    const ids = (ls.body as unknown as { id: string; role: string }[]).map((t) => `${t.id}:${t.role}`);
    for (const want of ['admin:admin', 'join:agent', 'portal:viewer', 'node.na:node', 'node.nb:node']) assert.ok(ids.includes(want), `${want} in ${ids}`);
    assert.ok(!ls.text.includes('hash') && !ls.text.includes(viewer), 'no secrets or hashes listed');

    // Rotation: the old join token stops working, the new one joins, the data-dir file follows.
    const oldJoin = server.tokens.join;
    const rot = await raw('POST', '/v1/tokens/join/rotate', server.tokens.admin);
    assert.equal(rot.status, 200, rot.text);
    assert.equal((await raw('POST', '/v1/agent/register', oldJoin, reg('nc'))).status, 401);
    assert.equal((await raw('POST', '/v1/agent/register', String(rot.body.token), reg('nc'))).status, 200);
    assert.equal((await readFile(server.tokens.joinTokenFile, 'utf8')).trim(), rot.body.token);

    assert.equal((await raw('DELETE', '/v1/tokens/portal', server.tokens.admin)).status, 200);
    assert.equal((await raw('GET', '/v1/services', viewer)).status, 401, 'revoked');
    assert.equal((await raw('DELETE', '/v1/tokens/admin', server.tokens.admin)).status, 409, 'the last admin token stays');
  });

  it('events: rate-limited per node, messages truncated', async () => {
    const b = creds.get('nb')!;
    const long = 'x'.repeat(10_000);
    assert.equal((await raw('POST', '/v1/agent/events', b, { object: 'node/nb', type: 'Warning', reason: 'Long', message: long })).status, 204);
    const ev = (await admin.get<{ reason: string; message: string }[]>('/v1/events?object=node/nb')).find((e) => e.reason === 'Long')!;
    assert.ok(ev.message.length < 1100, `stored message ${ev.message.length} chars`);
    let refused = 0;
    for (let i = 0; i < 400 && refused === 0; i++) {
      const r = await raw('POST', '/v1/agent/events', b, { object: 'node/nb', type: 'Normal', reason: `Storm${i % 26 === 0 ? 'a' : 'b'}`, message: `event ${i}` });
      if (r.status === 429) refused++;
      else assert.equal(r.status, 204, r.text);
    }
    assert.equal(refused, 1, 'a storm from one node is refused with 429');
    // Another node is not throttled by nb's storm.
    assert.equal((await raw('POST', '/v1/agent/events', creds.get('na')!, { object: 'node/na', type: 'Normal', reason: 'Calm', message: 'x' })).status, 204);
  });
});

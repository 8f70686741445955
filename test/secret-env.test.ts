/**
 * Secret env through an update: `PATCH` with new secret values stores no plaintext —
 * checked in the store's rows and in the bytes of the SQLite files themselves (current
 * table, revision log, WAL) — and the node's agent receives the new value.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import type { ServiceView } from '../src/model/service.js';
import type { Replica } from '../src/model/replica.js';
import { FakeAgent } from './harness/fake-agent.js';
import { until } from './harness/kiver.js';

const OLD = 'first-Secret-5f1d';
const NEW = 'rotated-Secret-9a7c';

describe('secret env on update', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  /** The node's own credential: only it reads n1's assignments (with their opened secrets). */
  let node: ApiClient;
  let agent: FakeAgent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-secret-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 60 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    agent = new FakeAgent(server.url, server.tokens.join, 'n1');
    await agent.start();
    node = new ApiClient({ servers: [server.url], token: agent.credential! });
  });
  after(async () => {
    agent?.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The secret env the agent of n1 is given for web/0 at `generation`. */
  const assigned = (generation: number) =>
    until(`web/0 generation ${generation} assigned to n1`, async () => {
      const a = await node.get<{ replicas: Replica[] }>('/v1/agent/assignments?node=n1');
      const r = a.replicas.find((x) => x.service === 'web' && x.ordinal === 0 && x.desired === 'run');
      return r && r.generation === generation ? r.spec.secretEnv ?? {} : false;
    });

  /** Every plaintext found at rest: store rows, and the raw bytes of the SQLite files. */
  async function plaintextAtRest(...values: string[]): Promise<string[]> {
    const found: string[] = [];
    const rows = (await server.store.list('/kiver/')).kvs;
    for (const v of values) for (const kv of rows) if (kv.value.includes(v)) found.push(`${v} in store row ${kv.key}`);
    for (const f of (await readdir(dir)).filter((n) => n.startsWith('kiver.db'))) {
      const bytes = (await readFile(join(dir, f))).toString('latin1');
      for (const v of values) if (bytes.includes(v)) found.push(`${v} in ${f}`);
    }
    return found;
  }

  it('PATCH seals the new value, rolls it out, and the agent receives it', async () => {
    await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', replicas: 1, cpu: 0.1, memory: 2 ** 26, secretEnv: { DB_PASSWORD: OLD } });
    assert.deepEqual(await assigned(1), { DB_PASSWORD: OLD });
    assert.deepEqual(await plaintextAtRest(OLD), [], 'create stores no plaintext');

    const updated = await admin.patch<ServiceView>('/v1/services/web', { secretEnv: { DB_PASSWORD: NEW, API_KEY: `${NEW}-2` } });
    assert.deepEqual(updated.spec.secretEnv, { DB_PASSWORD: '(set)', API_KEY: '(set)' });
    assert.equal(updated.generation, 2, 'a new secret value rolls the replicas');
    assert.ok(!JSON.stringify(await admin.get('/v1/services/web')).includes(NEW), 'the API never returns the value');
    assert.deepEqual(await assigned(2), { DB_PASSWORD: NEW, API_KEY: `${NEW}-2` });
    assert.deepEqual(await plaintextAtRest(OLD, NEW), [], 'update stores no plaintext');
  });

  it('a PATCH that leaves secret env alone keeps the sealed value working', async () => {
    const updated = await admin.patch<ServiceView>('/v1/services/web', { memory: 2 ** 27 });
    assert.equal(updated.generation, 3);
    assert.deepEqual(await assigned(3), { DB_PASSWORD: NEW, API_KEY: `${NEW}-2` });
    assert.deepEqual(await plaintextAtRest(OLD, NEW), []);
  });
});

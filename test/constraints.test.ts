/**
 * Node label constraints end to end through the API server and the real `kiver` CLI
 * (no Docker: nodes join through the agent API with labels, as `kiver agent --label`
 * does, and run nothing): replicas land only on matching nodes, an unmatched replica
 * stays pending with an event naming the constraint, bad constraints are refused.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';
import type { NodeView } from '../src/model/node.js';
import { runCli, until } from './harness/kiver.js';

const GiB = 1024 ** 3;

describe('placement constraints (node labels)', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-constraints-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    const agent = new ApiClient({ servers: [server.url], token: server.tokens.join });
    const labels: Record<string, Record<string, string>> = {
      eu1: { zone: 'eu', disk: 'ssd' }, eu2: { zone: 'eu', disk: 'hdd' }, us1: { zone: 'us', disk: 'ssd' },
    };
    for (const [name, l] of Object.entries(labels)) {
      await agent.post('/v1/agent/register', { name, address: '127.0.0.1', cpus: 4, memory: 8 * GiB, labels: l });
    }
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => runCli({ ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin, KIVER_HOME: dir }, ...args);

  it('nodes keep the labels they registered with', async () => {
    const n = await admin.get<NodeView>('/v1/nodes/eu2');
    assert.deepEqual(n.labels, { zone: 'eu', disk: 'hdd' });
  });

  it('`kiver service create --constraint` places replicas only on nodes matching every constraint', async () => {
    const res = await cli('service', 'create', 'euro', '--image', 'kiver/busybox', '--replicas', '3', '--constraint', 'zone=eu', '--constraint', 'disk=ssd');
    assert.equal(res.code, 0, res.stderr);
    const s = await until('placed', async () => {
      const v = await admin.get<ServiceView>('/v1/services/euro');
      return v.replicas.length === 3 && v.replicas.every((r) => r.node) ? v : false;
    });
    assert.deepEqual(s.spec.constraints, { zone: 'eu', disk: 'ssd' });
    assert.deepEqual(s.replicas.map((r) => r.node), ['eu1', 'eu1', 'eu1'], 'only eu1 carries zone=eu and disk=ssd');
    const shown = await cli('service', 'get', 'euro');
    assert.match(shown.stdout, /^Constraints: zone=eu, disk=ssd$/m);
    const any = await admin.post<ServiceView>('/v1/services', { name: 'anywhere', image: 'kiver/busybox', replicas: 3 });
    const spread = await until('spread', async () => {
      const v = await admin.get<ServiceView>(`/v1/services/${any.name}`);
      return v.replicas.length === 3 && v.replicas.every((r) => r.node) ? v : false;
    });
    assert.deepEqual(spread.replicas.map((r) => r.node).sort(), ['eu1', 'eu2', 'us1'], 'no constraints: any node');
  });

  it('a replica no node matches stays pending, and the event names the constraint', async () => {
    await admin.post('/v1/services', { name: 'asia', image: 'kiver/busybox', replicas: 1, constraints: { zone: 'ap' } });
    const r = await until('pending', async () => {
      const v = await admin.get<ServiceView>('/v1/services/asia');
      return v.replicas[0]?.state === 'pending' ? v.replicas[0] : false;
    });
    assert.equal(r.node, '');
    assert.equal(r.lastError, '0/3 nodes fit: 3 node labels do not match constraint zone=ap');
    const evs = await admin.get<KiverEvent[]>('/v1/events?object=service/asia');
    assert.ok(evs.some((e) => e.reason === 'FailedScheduling' && e.message.includes('constraint zone=ap')), JSON.stringify(evs));
  });

  it('bad constraints are refused naming the field, and nothing is stored', async () => {
    const bad: [unknown, RegExp][] = [
      [{ Zone: 'eu' }, /constraints/],
      [{ zone: 'e u' }, /constraints\/zone/],
      [Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), /constraints/],
    ];
    for (const [constraints, field] of bad) {
      const res = await fetch(`${server.url}/v1/services`, {
        method: 'POST', headers: { authorization: `Bearer ${server.tokens.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'badc', image: 'kiver/busybox', constraints }),
      });
      assert.equal(res.status, 400, JSON.stringify(constraints));
      const body = (await res.json()) as { error: { field?: string } };
      assert.match(body.error.field ?? '', field);
    }
    const cliBad = await cli('service', 'create', 'badc', '--image', 'kiver/busybox', '--constraint', 'zone');
    assert.notEqual(cliBad.code, 0);
    assert.match(cliBad.stderr, /--constraint: expected key=value/);
    const list = await admin.get<ServiceView[]>('/v1/services');
    assert.ok(list.every((s) => s.name !== 'badc'), 'nothing stored');
    // Constraints are set at create: an update cannot move replicas by changing them.
    await admin.post('/v1/services', { name: 'fixed', image: 'kiver/busybox', replicas: 1, constraints: { zone: 'eu' } });
    const patch = await fetch(`${server.url}/v1/services/fixed`, {
      method: 'PATCH', headers: { authorization: `Bearer ${server.tokens.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ constraints: { zone: 'us' } }),
    });
    assert.equal(patch.status, 400);
    assert.deepEqual((await admin.get<ServiceView>('/v1/services/fixed')).spec.constraints, { zone: 'eu' });
  });
});

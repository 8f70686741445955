/**
 * The eviction brake, on the real server and store with fake agents: when most nodes
 * go NotReady at once nothing moves (one event, a metric); when they return every
 * replica is where it was, still spread; a minority loss still moves replicas.
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
import type { NodeView } from '../src/model/node.js';
import type { KiverEvent } from '../src/model/event.js';
import { FakeAgent } from './harness/fake-agent.js';
import { until } from './harness/kiver.js';

const NAMES = ['e1', 'e2', 'e3', 'e4'];

describe('the eviction brake', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const agents = new Map<string, FakeAgent>();
  const join_ = async (name: string) => {
    // A returning node is the same agent (its credential); the join token joins only new names.
    const a = agents.get(name) ?? new FakeAgent(server.url, server.tokens.join, name);
    await a.start();
    agents.set(name, a);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-brake-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 2 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    for (const n of NAMES) await join_(n);
  });
  after(async () => {
    for (const a of agents.values()) a.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const placement = async (name: string) => (await admin.get<ServiceView>(`/v1/services/${name}`)).replicas.map((r) => `${r.ordinal}:${r.node}@${r.uid}`).sort();
  const notReady = async () => (await admin.get<NodeView[]>('/v1/nodes')).filter((n) => !n.ready).map((n) => n.name);
  const events = (reason: string) => admin.get<KiverEvent[]>('/v1/events?limit=1000').then((es) => es.filter((e) => e.reason === reason));

  it('3 of 4 nodes lost at once: marked, nothing moves; back: every replica where it was', async () => {
    await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', replicas: 4, cpu: 0.1, memory: 2 ** 24 });
    await admin.post('/v1/services', { name: 'api', image: 'kiver/busybox', replicas: 8, cpu: 0.1, memory: 2 ** 24 });
    for (const s of ['web', 'api']) await until(`${s} running`, async () => (await admin.get<ServiceView>(`/v1/services/${s}`)).status.running > 0 && (await admin.get<ServiceView>(`/v1/services/${s}`)).replicas.every((r) => r.state === 'running'));
    const before_ = { web: await placement('web'), api: await placement('api') };
    assert.equal(new Set((await admin.get<ServiceView>('/v1/services/web')).replicas.map((r) => r.node)).size, 4, 'spread');

    for (const n of NAMES.slice(1)) agents.get(n)!.stop();
    await until('3 nodes NotReady', async () => (await notReady()).length === 3, 15_000);
    // Give the controller time it would have used to move everything (moves are immediate for replace).
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await events('Rescheduled'), [], 'nothing moved');
    assert.deepEqual({ web: await placement('web'), api: await placement('api') }, before_);
    const paused = await events('EvictionPaused');
    assert.equal(paused.length, 1);
    assert.match(paused[0].message, /3 of 4 nodes \(75 %\) are not ready/);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(m, /^kiver_eviction_brake 1$/m);

    for (const n of NAMES.slice(1)) await join_(n);
    await until('all ready', async () => (await notReady()).length === 0, 15_000);
    await until('resumed', async () => (await events('EvictionResumed')).length === 1, 10_000);
    assert.deepEqual({ web: await placement('web'), api: await placement('api') }, before_, 'every replica where it was');
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^kiver_eviction_brake 0$/m);
  });

  it('one node of 4 lost: its replicas move, spread over the others', async () => {
    const victim = 'e4';
    agents.get(victim)!.stop();
    await until('web moved off e4', async () => {
      const v = await admin.get<ServiceView>('/v1/services/web');
      return v.replicas.every((r) => r.node !== victim && r.state === 'running');
    }, 20_000);
    const api = await admin.get<ServiceView>('/v1/services/api');
    await until('api moved off e4', async () => (await admin.get<ServiceView>('/v1/services/api')).replicas.every((r) => r.node !== victim), 20_000);
    const nodes = new Set((await admin.get<ServiceView>('/v1/services/api')).replicas.map((r) => r.node));
    assert.ok(nodes.size === 3, `api spread over the 3 nodes left (${[...nodes]}; before ${api.replicas.map((r) => r.node)})`);
    assert.ok((await events('EvictionPaused')).length === 1, 'the brake did not engage again');
  });
});

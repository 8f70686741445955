/**
 * `kiver node rm` / DELETE /v1/nodes/:name on the real server and store with fake
 * agents: refused while replicas are placed there (nothing changes), forced removal
 * places them elsewhere, revokes the node's credential, and the eviction brake stops
 * counting the removed node (else losing one of the two left would look like a
 * majority loss and hold every move).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
import { KIVER_BIN, until } from './harness/kiver.js';

function cli(server: KiverServer, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [KIVER_BIN, ...args], { env: { ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => res({ code: code ?? -1, out }));
  });
}

describe('removing a node (kiver node rm)', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const agents = new Map<string, FakeAgent>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-node-rm-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 2 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    for (const n of ['r1', 'r2', 'r3']) {
      const a = new FakeAgent(server.url, server.tokens.join, n);
      await a.start();
      agents.set(n, a);
    }
  });
  after(async () => {
    for (const a of agents.values()) a.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const nodesOf = async (s: string) => (await admin.get<ServiceView>(`/v1/services/${s}`)).replicas.map((r) => r.node);
  const allRunning = async (s: string) => (await admin.get<ServiceView>(`/v1/services/${s}`)).replicas.every((r) => r.state === 'running');

  it('refused while replicas are placed there: 409 naming them, nothing changes', async () => {
    await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', replicas: 3, cpu: 0.1, memory: 2 ** 24 });
    await until('web spread and running', async () => new Set(await nodesOf('web')).size === 3 && (await allRunning('web')));
    const r = await cli(server, ['node', 'rm', 'r1']);
    assert.equal(r.code, 4, r.out); // exit code of a conflict (cli/exit-codes.ts)
    assert.match(r.out, /node r1 still has 1 replica\(s\) placed \(web\/\d\): drain it first \(kiver node drain r1\), or force the removal/);
    assert.equal((await admin.get<NodeView>('/v1/nodes/r1')).name, 'r1');
    await assert.rejects(admin.delete('/v1/nodes/r1?force=maybe'), /force/);
    await assert.rejects(admin.delete('/v1/nodes/nope'), /node nope not found/);
  });

  it('forced: the node, its liveness and credential go; its replica is placed on another node', async () => {
    // r1's agent still runs: the move below is the removal's doing, not a lost node's; its credential stops working.
    const r = await cli(server, ['node', 'rm', 'r1', '--force']);
    assert.equal(r.code, 0, r.out);
    const asR1 = new ApiClient({ servers: [server.url], token: agents.get('r1')!.credential! });
    await assert.rejects(asR1.post('/v1/agent/heartbeat', { node: 'r1' }), /401|unauthenticated|token/i);
    agents.get('r1')!.stop();
    assert.match(r.out, /node r1 removed \(1 replica\(s\) to be placed elsewhere\)/);
    assert.deepEqual((await admin.get<NodeView[]>('/v1/nodes')).map((n) => n.name).sort(), ['r2', 'r3']);
    await until('web on r2 and r3 only, running', async () => (await nodesOf('web')).every((n) => n === 'r2' || n === 'r3') && (await allRunning('web')), 30_000);
    const tokens = await admin.get<{ id: string }[]>('/v1/tokens');
    assert.ok(!tokens.some((t) => t.id === 'node.r1'), 'the credential record is gone');
    const ev = await admin.get<KiverEvent[]>('/v1/events?limit=1000');
    assert.ok(ev.some((e) => e.reason === 'NodeRemoved' && e.object === 'node/r1'), 'a NodeRemoved event');
  });

  it('the eviction brake no longer counts the removed node: losing r2 (1 of 2) moves its replicas', async () => {
    agents.get('r2')!.stop();
    await until('web all on r3 and running', async () => (await nodesOf('web')).every((n) => n === 'r3') && (await allRunning('web')), 30_000);
    const ev = await admin.get<KiverEvent[]>('/v1/events?limit=1000');
    assert.ok(!ev.some((e) => e.reason === 'EvictionPaused'), 'the brake did not engage');
  });
});

/**
 * `kiver sim`'s fleet against a real `kiver server` (SQLite): simulated nodes join with
 * the join token, turn Ready, and report their replicas running — or exited, at the
 * configured failure rate — and removed when the service goes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess, freePort, until } from './harness/kiver.js';
import { ApiClient } from '../src/client/api-client.js';
import { SimFleet } from '../src/sim/fleet.js';
import type { NodeView } from '../src/model/node.js';

interface Svc { replicas: { node: string; state: string; lastError?: string }[] }

describe('kiver sim', () => {
  let dir: string;
  let server: ServerProcess;
  let admin: ApiClient;
  const fleets: SimFleet[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-sim-'));
    server = new ServerProcess(dir, await freePort(), `sqlite:${join(dir, 'kiver.db')}`);
    await server.start();
    admin = new ApiClient({ servers: [server.url], token: (await readFile(join(dir, 'admin.token'), 'utf8')).trim(), timeoutMs: 10_000 });
  });
  after(async () => {
    for (const f of fleets) await f.stop();
    await server?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('simulated nodes join, run, fail at the set rate and remove replicas over the agent protocol', async () => {
    const joinToken = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
    const good = new SimFleet({ servers: [server.url], joinToken, nodes: 40, prefix: 'good', cpus: 4, heartbeatMs: 1000, waitSeconds: 5, startLatencyMs: 200, labels: { pool: 'good' } });
    const bad = new SimFleet({ servers: [server.url], joinToken, nodes: 5, prefix: 'bad', heartbeatMs: 1000, waitSeconds: 5, failureRate: 1, labels: { pool: 'bad' } });
    fleets.push(good, bad);
    await Promise.all([good.start(), bad.start()]);
    await until('45 ready nodes', async () => (await admin.get<NodeView[]>('/v1/nodes')).filter((n) => n.ready).length === 45);

    await admin.post('/v1/services', { name: 'web', image: 'nginx', replicas: 60, cpu: 0.5, memory: 64 * 2 ** 20, constraints: { pool: 'good' } });
    await admin.post('/v1/services', { name: 'crash', image: 'nginx', replicas: 3, cpu: 0.1, memory: 64 * 2 ** 20, constraints: { pool: 'bad' } });
    const web = await until('60 running', async () => {
      const s = await admin.get<Svc>('/v1/services/web');
      return s.replicas.filter((r) => r.state === 'running').length === 60 && s;
    }, 60_000);
    assert.ok(web.replicas.every((r) => r.node.startsWith('good-')));
    assert.equal(good.stats.running, 60);
    const crash = await until('3 exited', async () => {
      const s = await admin.get<Svc>('/v1/services/crash');
      return s.replicas.filter((r) => r.state === 'exited').length === 3 && s;
    }, 60_000);
    assert.ok(crash.replicas.every((r) => r.lastError === 'simulated failure'));

    await admin.delete('/v1/services/web');
    await until('web gone', async () => !(await admin.get<{ name: string }[]>('/v1/services')).some((s) => s.name === 'web'), 60_000);
    await until('no replica left running in the fleet', async () => good.stats.running === 0);
    assert.equal(good.stats.heartbeatFailures + bad.stats.heartbeatFailures, 0);
  });
});

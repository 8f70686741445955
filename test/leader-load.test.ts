/**
 * The 2 s leader lease under load: two `kiver server`s on a 3-member etcd while a fleet of
 * simulated nodes sends thousands of heartbeats through the agent protocol. The leader must
 * not flap: one leader (same id, same election) for the whole run, no step-down.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { ServerProcess, freePort, until } from './harness/kiver.js';
import { SimFleet } from './harness/sim-fleet.js';
import { ApiClient } from '../src/client/api-client.js';

const NODES = 300;
const RUN_MS = 20_000;

describe('leader under a heartbeat load', () => {
  let etcd: EtcdCluster;
  let dir: string;
  let servers: ServerProcess[] = [];

  before(async () => {
    etcd = await EtcdCluster.start({ members: 3 });
    dir = await mkdtemp(join(tmpdir(), 'kiver-load-'));
    const url = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    servers = [new ServerProcess(dir, await freePort(), url), new ServerProcess(dir, await freePort(), url)];
    for (const s of servers) await s.start();
  });
  after(async () => {
    for (const s of servers) await s.kill();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`${NODES} simulated nodes heartbeating every second for ${RUN_MS / 1000} s: one leader throughout`, async () => {
    const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    const joinToken = (await readFile(join(dir, 'join.token'), 'utf8')).trim();
    const admin = new ApiClient({ servers: servers.map((s) => s.url), token, timeoutMs: 5000 });
    const first = await until('a leader', () => admin.get<{ id: string; since: string }>('/v1/cluster/leader'));
    const fleet = new SimFleet(servers.map((s) => s.url), joinToken, Array.from({ length: NODES }, (_, i) => `sim-${i}`));
    await fleet.register();
    const leaders = new Set<string>();
    fleet.start(1000);
    const t0 = Date.now();
    while (Date.now() - t0 < RUN_MS) {
      const l = await admin.get<{ id: string; since: string }>('/v1/cluster/leader').catch(() => undefined);
      leaders.add(l ? `${l.id}@${l.since}` : 'none');
      await new Promise((r) => setTimeout(r, 200));
    }
    await fleet.stop();
    process.stderr.write(`# ${fleet.heartbeats} heartbeats (${fleet.failures} failed) in ${RUN_MS / 1000} s; leaders seen: ${[...leaders].join(', ')}\n`);
    // Throughput depends on the machine (~2,000 in 20 s on 2 busy cores): what matters is the load.
    assert.ok(fleet.heartbeats >= 1000, `thousands of heartbeats went through (${fleet.heartbeats})`);
    assert.deepEqual([...leaders], [`${first.id}@${first.since}`], 'the same leader, never re-elected');
    for (const s of servers) assert.doesNotMatch(s.output, /stepping down as leader/, 'no step-down');
  });
});

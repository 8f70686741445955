/**
 * The disconnect policy under a real partition (a test host's link goes down; its agent
 * and dockerd keep running), with every host's Docker sampled every 100 ms through its
 * own socket:
 *  - on-node-lost wait: never two running containers of one replica identity; the cut-off
 *    agent stops its copy, and the server moves it only after the grace plus a margin;
 *  - on-node-lost replace: the replica runs elsewhere within the grace (+ 10 s); after the
 *    heal the returning node keeps nothing that moved.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHostsCluster } from './harness/hosts-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';

const GRACE_S = 5;

describe('disconnect policy under a partition', () => {
  const c = useHostsCluster(3, { graceSeconds: GRACE_S });
  const svc = (name: string) => c.svc(name);

  /** Running containers per replica identity, across every host's dockerd. */
  async function sample(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    await Promise.all(c.run.hosts.map(async (h) => {
      const cs = await h.docker.listContainers({ filters: { label: ['kiver.managed=true'] } }).catch(() => []);
      for (const c of cs) out.set(c.Labels['kiver.replica'], [...(out.get(c.Labels['kiver.replica']) ?? []), h.name]);
    }));
    return out;
  }

  it('wait: never two copies; replace: moved within the grace, its duplicate gone after the heal', async () => {
    const common = { image: 'kiver/busybox', command: ['sleep', '86400'], replicas: 3, cpu: 0.05, memory: 2 ** 24 };
    await c.admin.post('/v1/services', { name: 'db', ...common, onNodeLost: 'wait' });
    await c.admin.post('/v1/services', { name: 'web', ...common });
    assert.equal((await svc('web')).spec.onNodeLost, 'replace', 'replace is the default for a stateless service');
    for (const name of ['db', 'web']) await until(`${name} running`, async () => (await svc(name)).status.running === 3, 60_000);
    const db = await svc('db');
    const victim = c.run.host(db.replicas[0].node);
    const web = (await svc('web')).replicas.find((r) => r.node === victim.name)!;

    let maxDb = 0;
    let worst = '';
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const [id, hosts] of await sample()) {
          if (id.startsWith('db/') && hosts.length > maxDb) [maxDb, worst] = [hosts.length, `${id} on ${hosts}`];
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await victim.disconnect();
      const t0 = Date.now();
      const webMoved = await until('web replica running elsewhere', async () => {
        const r = (await svc('web')).replicas[web.ordinal];
        return r.node !== victim.name && r.state === 'running' ? r : false;
      }, (GRACE_S + 15) * 1000);
      const webTook = Date.now() - t0;
      const dbMoved = await until('db replica running elsewhere', async () => {
        const r = (await svc('db')).replicas[0];
        return r.node !== victim.name && r.state === 'running' ? r : false;
      }, (GRACE_S + 30) * 1000);
      const dbTook = Date.now() - t0;
      process.stderr.write(`# partition → replace moved after ${webTook} ms, wait moved after ${dbTook} ms\n`);
      assert.ok(webTook <= (GRACE_S + 10) * 1000, `replace: moved within grace + 10 s (${webTook} ms)`);
      assert.ok(dbTook >= GRACE_S * 1000, 'wait: not moved before the grace');
      assert.notEqual(webMoved.uid, web.uid);
      assert.notEqual(dbMoved.uid, db.replicas[0].uid);
      // The cut-off host stopped its wait copy but still runs its replace copy (that is the trade-off).
      const onVictim = await victim.docker.listContainers({ filters: { label: ['kiver.managed=true'] } });
      assert.ok(!onVictim.some((c) => c.Labels['kiver.replica'] === 'db/0'), 'the cut-off agent stopped db/0');

      await victim.connect();
      await until('no duplicates after the heal', async () => {
        const s = await sample();
        return ['db/0', 'db/1', 'db/2', 'web/0', 'web/1', 'web/2'].every((id) => s.get(id)?.length === 1);
      }, 60_000);
      await until('the returning node keeps nothing that moved', async () => {
        const left = await victim.docker.listContainers({ all: true, filters: { label: ['kiver.managed=true'] } });
        const kept = left.map((x) => x.Labels['kiver.replica']);
        return !kept.includes('db/0') && !kept.includes(`web/${web.ordinal}`);
      }, 30_000);
    } finally {
      sampling = false;
      await sampler;
      await victim.connect().catch(() => {});
    }
    assert.equal(maxDb, 1, `never two running copies of a wait replica (saw ${worst})`);
  });
});

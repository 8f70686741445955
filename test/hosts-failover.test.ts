/**
 * Node loss and drain on real test hosts: three network-namespace hosts, each with
 * its own dockerd and `kiver agent`, one Kiver server on the bridge.
 *  - kill a host (agent + dockerd) → its replica of a stateless service runs on
 *    another host within grace + 10 s; the host comes back → no duplicate remains;
 *  - drain a host → all its replicas move, never more than one down per service.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHostsCluster } from './harness/hosts-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';

const GRACE_S = 5;
const CMD = ['/bin/sh', '-c', 'echo "$KIVER_REPLICA" > /data/who; exec httpd -f -p 8080 -h /data'];

describe('node loss and drain on test hosts', () => {
  const c = useHostsCluster(3, { graceSeconds: GRACE_S });
  const svc = (name: string) => c.svc(name);
  /** Containers of a service across every host's dockerd that are running. */
  async function running(name: string): Promise<{ host: string; replica: string }[]> {
    const out: { host: string; replica: string }[] = [];
    for (const h of c.run.hosts) {
      if (!(await h.dockerAnswers(1000))) continue;
      const cs = await h.docker.listContainers({ filters: { label: [`kiver.service=${name}`] } });
      for (const c of cs) out.push({ host: h.name, replica: c.Labels['kiver.replica'] });
    }
    return out;
  }

  it('a killed host: its replica moves within grace + 10 s; when it returns no duplicate remains', async () => {
    await c.admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', command: CMD, replicas: 3, cpu: 0.2, memory: 2 ** 25, ports: [{ container: 8080 }] });
    const s = await until('3 running on 3 hosts', async () => {
      const v = await svc('web');
      return v.status.running === 3 ? v : false;
    }, 60_000);
    assert.equal(new Set(s.replicas.map((r) => r.node)).size, 3);
    // Each replica answers on its host's address from another host.
    const r0 = s.replicas[0];
    const other = c.run.hosts.find((h) => h.name !== r0.node)!;
    const page = await other.exec(['busybox', 'wget', '-qO-', `http://${c.run.host(r0.node).ip}:${r0.ports[0].host}/who`]);
    assert.equal(page.stdout.trim(), 'web/0');

    const victim = c.run.host(s.replicas[1].node);
    await victim.kill();
    const t0 = Date.now();
    const moved = await until('replica 1 running elsewhere', async () => {
      const r = (await svc('web')).replicas[1];
      return r.node !== victim.name && r.state === 'running' ? r : false;
    }, (GRACE_S + 10) * 1000 + 5_000);
    const took = Date.now() - t0;
    assert.ok(took <= (GRACE_S + 10) * 1000, `moved in ${took} ms (grace ${GRACE_S} s + 10 s)`);
    process.stderr.write(`# host kill → replica running on ${moved.node} after ${took} ms\n`);

    await victim.start();
    await until('the returned host removed its stale copy', async () => {
      const rs = await running('web');
      return rs.length === 3 && new Set(rs.map((r) => r.replica)).size === 3 ? rs : false;
    }, 30_000);
    const rs = await running('web');
    assert.ok(!rs.some((r) => r.host === victim.name && r.replica === 'web/1'), 'no second copy of web/1');
  });

  it('drain moves every replica off a host, never more than one replica of a service down', async () => {
    await until('all hosts ready', async () => (await c.admin.get<{ ready: boolean }[]>('/v1/nodes')).every((n) => n.ready), 30_000);
    await until('web settled', async () => (await svc('web')).status.running === 3, 30_000);
    const target = (await svc('web')).replicas[0].node;
    let maxDown = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const v = await svc('web');
        maxDown = Math.max(maxDown, v.replicas.filter((r) => r.desired === 'run' && r.state !== 'running').length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await c.admin.post(`/v1/nodes/${target}/drain`, { deadlineSeconds: 600 });
    await until('drained', async () => {
      const v = await svc('web');
      return v.status.running === 3 && v.replicas.every((r) => r.node !== target);
    }, 60_000);
    sampling = false;
    await sampler;
    assert.ok(maxDown <= 1, `at most one replica down (saw ${maxDown})`);
    await until('no container left on the drained host', async () => (await running('web')).every((r) => r.host !== target), 20_000);
  });
});

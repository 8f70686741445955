/**
 * Fixed IPs on real test hosts (three network namespaces on one L2 bridge, each with its
 * own dockerd and `kiver agent`): a macvlan pool on every host's eth0; replicas answer on
 * their fixed addresses from another host and from each other; a partitioned host's
 * replica comes back on another host with the same address and answers there; sampled
 * every 100 ms on every host's Docker, the address is never running on two hosts, also
 * after the partitioned host returns.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHostsCluster } from './harness/hosts-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import type { PoolView } from '../src/model/pool.js';

const GRACE_S = 5;
const CMD = ['/bin/sh', '-c', 'echo "$KIVER_REPLICA" > /data/who; exec httpd -f -p 8080 -h /data'];

describe('fixed IPs on test hosts (macvlan)', () => {
  const c = useHostsCluster(3, { graceSeconds: GRACE_S });

  /** Hosts whose Docker runs a container holding `ip` (a partitioned host's Docker still answers: it is a local socket). */
  async function holders(ip: string): Promise<string[]> {
    const out: string[] = [];
    await Promise.all(c.run.hosts.map(async (h) => {
      if (!(await h.dockerAnswers(1000))) return;
      const cs = await h.docker.listContainers({ filters: { label: [`kiver.ip=${ip}`], status: ['running'] } });
      if (cs.length > 0) out.push(h.name);
    }));
    return out;
  }

  async function fetchFrom(hostName: string, ip: string): Promise<string> {
    const r = await c.run.host(hostName).exec(['busybox', 'wget', '-qO-', `http://${ip}:8080/who`], { allowFail: true, timeoutMs: 5000 });
    return r.stdout.trim();
  }

  it('answers on its fixed address from another host, keeps it when moved off a partitioned host, never live twice', async () => {
    const base = c.run.cidr.split('/')[0].split('.').slice(0, 3).join('.');
    const pool = await c.admin.post<PoolView>('/v1/pools', {
      name: 'lan', cidr: c.run.cidr, ranges: [`${base}.200-${base}.209`], gateway: c.run.bridgeIp, parent: 'eth0', scope: { global: true },
    });
    assert.equal(pool.driver, 'macvlan');
    await c.admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', command: CMD, replicas: 2, cpu: 0.1, memory: 2 ** 25 });
    const s = await until('2 running', async () => {
      const v = await c.admin.get<ServiceView>('/v1/services/web');
      return v.status.running === 2 && v.replicas.every((r) => r.ip) ? v : false;
    }, 90_000);
    const [r0, r1] = s.replicas;
    assert.notEqual(r0.node, r1.node);
    assert.ok(r0.ip!.startsWith(`${base}.20`), r0.ip);
    // From a host that does not run it (a macvlan child is not reachable from its own parent's host).
    const third = c.run.hosts.find((h) => h.name !== r0.node && h.name !== r1.node)!;
    assert.equal(await until('web/0 answers on its address', async () => (await fetchFrom(third.name, r0.ip!)) === 'web/0' || undefined, 20_000), true);
    // Replica to replica, at their fixed addresses.
    const h1 = c.run.host(r1.node);
    const inner = await h1.exec(['docker', '-H', h1.dockerHost, 'exec', 'kiver-web-1', 'wget', '-qO-', `http://${r0.ip}:8080/who`], { allowFail: true, timeoutMs: 10_000 });
    assert.equal(inner.stdout.trim(), 'web/0', inner.stderr);
    // No published port: the service is reached at its address only.
    const ports = (await c.run.host(r0.node).docker.listContainers({ filters: { label: ['kiver.replica=web/0'] } }))[0].Ports;
    assert.deepEqual(ports.filter((p) => p.PublicPort), []);

    // Sample every 100 ms: never running on two hosts.
    let maxHolders = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const hs = await holders(r0.ip!).catch(() => []);
        maxHolders = Math.max(maxHolders, hs.length);
        samples++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const victim = c.run.host(r0.node);
    await victim.disconnect();
    const t0 = Date.now();
    const moved = await until('web/0 running elsewhere', async () => {
      const r = (await c.admin.get<ServiceView>('/v1/services/web')).replicas[0];
      return r.node !== victim.name && r.state === 'running' ? r : false;
    }, 90_000, 250);
    process.stderr.write(`# partition → web/0 running on ${moved.node} at ${moved.ip} after ${Date.now() - t0} ms\n`);
    assert.equal(moved.ip, r0.ip, 'same address after the move');
    const observer = c.run.hosts.find((h) => h.name !== victim.name && h.name !== moved.node)!;
    assert.equal(await until('web/0 answers at its address on the new host', async () => (await fetchFrom(observer.name, r0.ip!)) === 'web/0' || undefined, 30_000), true);

    // The partitioned host returns: it must not bring back a second holder.
    await victim.connect();
    await until('the returned host removed its stale copy', async () => {
      const cs = await victim.docker.listContainers({ all: true, filters: { label: ['kiver.replica=web/0'] } });
      return cs.length === 0 || undefined;
    }, 60_000, 250);
    await new Promise((r) => setTimeout(r, 2000));
    sampling = false;
    await sampler;
    process.stderr.write(`# ${samples} samples, at most ${maxHolders} host(s) running ${r0.ip}\n`);
    assert.ok(samples > 20);
    assert.equal(maxHolders, 1, 'never live on two hosts');
    assert.deepEqual(await holders(r0.ip!), [moved.node]);
    assert.equal(await fetchFrom(victim.name, r0.ip!), 'web/0', 'the returned host reaches it at the same address');
  });
});

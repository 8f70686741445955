/**
 * No silent stuck replica, on a real test host (own dockerd, real kiver agent):
 *  - Docker refuses to start the container (its host port is taken by a container Kiver
 *    does not own): the status and one event carry Docker's message; the agent gives up
 *    on that container after a few fresh ones, and the controller places the replica
 *    anew with a fresh host port, where it runs;
 *  - dockerd is killed while the container starts: the replica converges to running, or
 *    is reported failed with Docker's message — never `creating` forever.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHostsCluster } from './harness/hosts-cluster.js';
import { until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';

const HTTPD = ['/bin/sh', '-c', 'exec httpd -f -p 8080 -h /data'];

describe('replicas Docker will not start', () => {
  const c = useHostsCluster(1, { graceSeconds: 10 });
  const svc = (name: string) => c.svc(name);

  it('a taken host port: the error reaches status and events, and the replica runs on a fresh port', async () => {
    const h = c.run.hosts[0];
    // A container Kiver does not manage holds the first port of the dynamic range.
    const blocker = await h.docker.createContainer({
      name: 'port-blocker', Image: 'kiver/busybox', Cmd: ['sleep', '3600'],
      ExposedPorts: { '80/tcp': {} }, HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '20000' }] } },
    });
    await blocker.start();
    await c.admin.post('/v1/services', { name: 'blocked', image: 'kiver/busybox', command: HTTPD, replicas: 1, cpu: 0.1, memory: 2 ** 24, ports: [{ container: 8080 }] });
    const seen = await until('the start error in the replica status', async () => {
      const r = (await svc('blocked')).replicas[0];
      return r?.lastError && /port is already allocated/.test(r.lastError) ? r : false;
    }, 60_000);
    assert.match(seen.lastError!, /^start failed: /);
    const running = await until('running on a fresh port', async () => {
      const r = (await svc('blocked')).replicas[0];
      return r?.state === 'running' ? r : false;
    }, 90_000).catch(async (err) => {
      process.stderr.write(`DEBUG ${JSON.stringify(await svc('blocked'))}\n${JSON.stringify(await c.admin.get('/v1/events?limit=50'))}\n${h.agentLog().slice(-3000)}\n`);
      throw err;
    });
    assert.notEqual(running.ports[0].host, 20000);
    const evs = await c.admin.get<KiverEvent[]>('/v1/events?object=replica/blocked/0');
    const failed = evs.find((e) => e.reason === 'StartFailed');
    assert.ok(failed, `a StartFailed event (events: ${evs.map((e) => e.reason)})`);
    assert.match(failed.message, /start failed: .*port is already allocated/);
    assert.ok(!evs.some((e) => e.reason === 'Restarted' && /started it again/.test(e.message)), 'no event claims a start that failed');
    assert.ok(evs.some((e) => e.reason === 'Rescheduled'), 'placed anew');
    await blocker.remove({ force: true });
  });

  it('dockerd killed while the container starts: running, or failed with Docker\'s message', async () => {
    const h = c.run.hosts[0];
    await c.admin.post('/v1/services', { name: 'racy', image: 'kiver/busybox', command: HTTPD, replicas: 1, cpu: 0.1, memory: 2 ** 24, ports: [{ container: 8080 }] });
    // Kill dockerd the moment the replica's container exists (created, maybe starting).
    await until('the container exists', async () => (await h.docker.listContainers({ all: true, filters: { label: ['kiver.service=racy'] } })).length > 0, 30_000, 20);
    await h.killDockerd('SIGKILL');
    await h.startDockerd();
    const end = await until('running, or failed with a reason', async () => {
      const r = (await svc('racy')).replicas[0];
      return r && (r.state === 'running' || (r.state === 'failed' && r.lastError)) ? r : false;
    }, 120_000);
    process.stderr.write(`# dockerd killed during start → ${end.state}${end.lastError ? ` (${end.lastError})` : ''}\n`);
    if (end.state === 'running') {
      const cs = await h.docker.listContainers({ filters: { label: ['kiver.service=racy'] } });
      assert.equal(cs.length, 1, 'one running container');
    }
  });
});

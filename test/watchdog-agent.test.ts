/**
 * The Docker watchdog inside a real `kiver agent` on a test host: a replica serves on a
 * published port; kill -9 of the host's dockerd → the replica keeps serving (live-restore),
 * the agent's watchdog restarts dockerd with the configured command (--docker-restart-cmd,
 * here the harness's "restart this host's dockerd"), records DockerRestarting and
 * DockerRecovered events on its node, and re-syncs without recreating the container.

 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, sweepStale, type TestHosts, type TestHost } from './harness/hosts.js';
import { until } from './harness/kiver.js';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';

describe('Docker watchdog in kiver agent', () => {
  let run: TestHosts;
  let host: TestHost;
  let server: KiverServer;
  let admin: ApiClient;
  let dir: string;

  before(async () => {
    await sweepStale();
    run = await createHosts(1);
    host = run.hosts[0];
    dir = await mkdtemp(join(tmpdir(), 'kiver-watchdog-agent-'));
    server = await KiverServer.start({ dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', 'silent'), nodeLeaseTtl: 30 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    await host.startAgent({
      servers: server.url, token: server.tokens.join,
      args: ['--docker-restart-cmd', JSON.stringify(host.restartDockerdCommand), '--docker-watchdog-interval', '1s', '--docker-watchdog-failures', '3'],
    });
  });
  after(async () => {
    try {
      await run?.destroy(); // first: the agents' long polls would hold server.close() up
    } finally {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  const events = () => admin.get<KiverEvent[]>(`/v1/events?object=node/${host.name}`);

  it('kill -9 of dockerd: the replica keeps serving, the agent restarts dockerd and adopts the same container', async (t) => {
    await admin.post('/v1/services', {
      name: 'web', image: 'kiver/busybox', replicas: 1, cpu: 0.1, memory: 2 ** 26, ports: [{ container: 80, host: 8080 }],
      command: ['sh', '-c', 'mkdir -p /www && echo served-by-kiver > /www/index.html && exec httpd -f -p 80 -h /www'],
    });
    const url = `http://${host.ip}:8080/`;
    const before = await until('web running', async () => {
      const s = await admin.get<ServiceView>('/v1/services/web');
      return s.status.running === 1 ? s.replicas[0] : false;
    }, 60_000);
    await until(`${url} serves`, async () => (await fetch(url)).ok);
    const c0 = await host.docker.getContainer(before.containerId!).inspect();
    const agentPid = host.agentPid();

    const killedAt = Date.now();
    await host.killDockerd('SIGKILL');
    assert.equal((await (await fetch(url)).text()).trim(), 'served-by-kiver', 'serves while dockerd is dead');

    const evs = await until('DockerRecovered event', async () => {
      const e = await events();
      return e.some((x) => x.reason === 'DockerRecovered') ? e : false;
    }, 60_000, 250);
    t.diagnostic(`kill -9 to DockerRecovered: ${Date.parse(evs.find((x) => x.reason === 'DockerRecovered')!.lastAt) - killedAt} ms`);
    const restarting = evs.find((x) => x.reason === 'DockerRestarting');
    assert.ok(restarting, `a DockerRestarting event (have ${evs.map((x) => x.reason).join(', ')})`);
    assert.equal(restarting.type, 'Warning');
    assert.match(restarting.message, /did not answer 3 pings in a row/);
    assert.ok(await host.dockerAnswers(), 'dockerd is back');
    assert.equal(host.agentPid(), agentPid, 'the same agent did it');

    // Re-synced, nothing recreated: same container, same process, same start, one container.
    await until('agent reports running after the restart', async () => {
      const s = await admin.get<ServiceView>('/v1/services/web');
      return s.status.running === 1;
    });
    const s = await admin.get<ServiceView>('/v1/services/web');
    assert.equal(s.replicas[0].containerId, before.containerId);
    assert.equal(s.replicas[0].uid, before.uid);
    const c1 = await host.docker.getContainer(before.containerId!).inspect();
    assert.equal(c1.State.Pid, c0.State.Pid);
    assert.equal(c1.State.StartedAt, c0.State.StartedAt);
    assert.equal((await host.docker.listContainers({ all: true })).length, 1);
    assert.equal((await (await fetch(url)).text()).trim(), 'served-by-kiver');
    const replicaEvents = await admin.get<KiverEvent[]>('/v1/events?object=replica/web/0');
    assert.deepEqual(replicaEvents.filter((e) => ['Restarted', 'CrashLoop', 'Rescheduled', 'CreateFailed'].includes(e.reason)).map((e) => e.reason), []);
    assert.equal(replicaEvents.find((e) => e.reason === 'Started')?.count, 1, 'started once, never recreated');
  });
});

describe('kiver agent and live-restore', () => {
  it('refuses a dockerd without live-restore unless --allow-no-live-restore, then warns with an event', async () => {
    const run = await createHosts(1, { images: [], dockerdArgs: ['--live-restore=false'] });
    const dir = await mkdtemp(join(tmpdir(), 'kiver-live-restore-'));
    let server: KiverServer | undefined;
    try {
      const host = run.hosts[0];
      assert.equal((await host.docker.info()).LiveRestoreEnabled, false);
      server = await KiverServer.start({ dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', 'silent') });
      const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
      await assert.rejects(host.startAgent({ servers: server.url, token: server.tokens.join }, 15_000), /exited[\s\S]*live-restore/);
      await host.startAgent({ servers: server.url, token: server.tokens.join, args: ['--allow-no-live-restore'] });
      assert.match(host.agentLog(), /WARNING: the Docker daemon runs without live-restore/);
      await until('DockerNoLiveRestore event', async () =>
        (await admin.get<KiverEvent[]>(`/v1/events?object=node/${host.name}`)).some((e) => e.reason === 'DockerNoLiveRestore' && e.type === 'Warning'));
    } finally {
      try {
        await run.destroy();
      } finally {
        await server?.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});

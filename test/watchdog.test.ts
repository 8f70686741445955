/**
 * The Docker watchdog against a real dockerd on a test host (test/harness/hosts.ts):
 * kill -9 of dockerd → a busybox httpd keeps serving (live-restore) → the watchdog counts
 * its failed pings and runs the restart command (the harness's "restart this host's
 * dockerd", in another process, like `systemctl restart docker`) → dockerd is back and the
 * container is the same one: same id, same PID, same StartedAt, never restarted. Then a
 * hung (SIGSTOPped) dockerd: the pings time out and the watchdog restarts it as well.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createHosts, sweepStale, type TestHosts, type TestHost } from './harness/hosts.js';
import { until } from './harness/kiver.js';
import { DockerRuntime } from '../src/agent/runtime/docker.js';
import { DockerWatchdog, checkLiveRestore } from '../src/agent/watchdog.js';

const IMAGE = 'kiver/busybox:latest';

describe('Docker watchdog on a test host', () => {
  let run: TestHosts;
  let host: TestHost;

  before(async () => {
    await sweepStale();
    run = await createHosts(1);
    host = run.hosts[0];
  });
  after(async () => {
    await run?.destroy();
  });

  function watchdog(registry: Registry) {
    const events: { type: string; reason: string; message: string; at: number }[] = [];
    let recovered = 0;
    const runtime = new DockerRuntime(host.docker, host.name);
    const wd = new DockerWatchdog({
      ping: () => runtime.ping(1000),
      restartCommand: host.restartDockerdCommand,
      failuresBeforeRestart: 3,
      intervalMs: 300,
      pingTimeoutMs: 1500,
      backoff: { initialMs: 2000, maxMs: 10_000 },
      restartTimeoutMs: 60_000,
      onEvent: (type, reason, message) => events.push({ type, reason, message, at: Date.now() }),
      onRecovered: () => {
        recovered++;
      },
      registry,
    });
    return { wd, events, get recovered() { return recovered; } };
  }

  async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = (m?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((x) =>
      Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  }

  async function startServer(port: number, body: string) {
    const c = await host.docker.createContainer({
      Image: IMAGE,
      Cmd: ['sh', '-c', `mkdir -p /www && echo ${body} > /www/index.html && exec httpd -f -p ${host.ip}:${port} -h /www`],
      HostConfig: { NetworkMode: 'host', RestartPolicy: { Name: 'always', MaximumRetryCount: 0 } },
    });
    await c.start();
    const url = `http://${host.ip}:${port}/`;
    await until(`httpd on ${url}`, async () => (await fetch(url)).ok);
    const info = await c.inspect();
    return { id: c.id, url, pid: info.State.Pid, startedAt: info.State.StartedAt };
  }

  async function assertSameContainer(c: { id: string; pid: number; startedAt: string }) {
    const info = await host.docker.getContainer(c.id).inspect();
    assert.equal(info.Id, c.id);
    assert.equal(info.State.Running, true);
    assert.equal(info.State.Pid, c.pid, 'same process');
    assert.equal(info.State.StartedAt, c.startedAt, 'not restarted');
    assert.equal(info.RestartCount, 0);
    assert.equal((await host.docker.listContainers({ all: true })).length, 1, 'no second container');
  }

  it('the host runs dockerd with live-restore', async () => {
    assert.equal(await checkLiveRestore(host.docker), true);
  });

  it('kill -9 of dockerd: the container keeps serving, the watchdog restarts dockerd, the container is the same', async (t) => {
    const c = await startServer(8080, 'still-here');
    const registry = new Registry();
    const w = watchdog(registry);
    w.wd.start();
    try {
      await until('watchdog sees docker up', async () => (await metric(registry, 'kiver_agent_docker_up')) === 1);
      const oldPid = host.dockerdPid()!;
      const killedAt = Date.now();
      await host.killDockerd('SIGKILL');
      assert.equal(await host.dockerAnswers(500), false, 'dockerd is down');
      // live-restore: the container serves while its daemon is dead.
      assert.equal((await (await fetch(c.url)).text()).trim(), 'still-here');

      const recovered = await until('DockerRecovered', async () => w.events.find((e) => e.reason === 'DockerRecovered'), 60_000, 100);
      t.diagnostic(`kill -9 to recovered: ${recovered.at - killedAt} ms`);
      const restarting = w.events.find((e) => e.reason === 'DockerRestarting')!;
      assert.ok(restarting, 'a DockerRestarting event');
      assert.match(restarting.message, /did not answer 3 pings in a row/);
      assert.deepEqual(w.events.map((e) => e.reason), ['DockerRestarting', 'DockerRecovered']);
      assert.equal(w.recovered, 1, 'onRecovered once');
      assert.ok((await metric(registry, 'kiver_agent_docker_ping_failures_total')) >= 3);
      assert.equal(await metric(registry, 'kiver_agent_docker_restarts_total', { result: 'ok' }), 1);
      assert.equal(await metric(registry, 'kiver_agent_docker_up'), 1);

      // The watchdog's command started a new dockerd; the container was adopted, not recreated.
      const newPid = host.dockerdPid();
      assert.ok(newPid && newPid !== oldPid, 'a new dockerd process');
      await assertSameContainer(c);
      assert.equal((await (await fetch(c.url)).text()).trim(), 'still-here');
    } finally {
      await w.wd.stop();
    }
  });

  it('a hung dockerd (SIGSTOP): pings time out, the watchdog restarts it, the container is the same', async (t) => {
    await host.removeAllContainers();
    const c = await startServer(8081, 'hung-daemon');
    const registry = new Registry();
    const w = watchdog(registry);
    w.wd.start();
    try {
      await until('watchdog sees docker up', async () => (await metric(registry, 'kiver_agent_docker_up')) === 1);
      const hungAt = Date.now();
      await host.pauseDockerd();
      assert.equal((await (await fetch(c.url)).text()).trim(), 'hung-daemon', 'serves while dockerd hangs');
      const recovered = await until('DockerRecovered', async () => w.events.find((e) => e.reason === 'DockerRecovered'), 60_000, 100);
      t.diagnostic(`SIGSTOP to recovered: ${recovered.at - hungAt} ms`);
      assert.match(w.events.find((e) => e.reason === 'DockerRestarting')!.message, /timeout|no answer/);
      await assertSameContainer(c);
    } finally {
      await w.wd.stop();
      await host.resumeDockerd().catch(() => undefined);
    }
  });
});

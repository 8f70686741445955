/**
 * The core on real Docker, driven through the real `kiver up` process and its API:
 * a replicated service really runs, survives `docker kill` and kill -9 of Kiver,
 * rolls updates one replica at a time, and deletes with or without its data.
 * One `kiver up` serves every test; each test creates (and removes) the services it
 * needs, so any test runs alone or in any order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KiverProcess, until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';

const IMAGE = 'kiver/busybox:latest';
// Each start appends a line to /data/boots: the file shows restarts and data survival.
const CMD = ['/bin/sh', '-c', 'echo "$KIVER_REPLICA $(date +%s%N)" >> /data/boots; mkdir -p /log/app/2026; echo up >> /log/app/2026/main.log; exec sleep 100000'];

describe('service lifecycle on real Docker', () => {
  let k: KiverProcess;

  before(async () => {
    k = await KiverProcess.create();
    const built = await k.cli('image', 'build', 'busybox');
    assert.equal(built.code, 0, built.stderr);
    await k.start();
  });
  after(async () => {
    await k?.cleanup();
  });

  const get = (name: string) => k.client.get<ServiceView>(`/v1/services/${name}`);
  const allRunning = (name: string, n: number) =>
    until(`${name}: ${n} replicas running`, async () => {
      const s = await get(name);
      return s.status.running === n && s.status.updated === n && s.replicas.length === n ? s : false;
    }, 60_000);
  const boots = (name: string, ordinal: number) => join(k.dataRoot, name, String(ordinal), 'boots');
  const bootLines = (name: string, ordinal: number) => readFileSync(boots(name, ordinal), 'utf8').trim().split('\n');
  const containersOf = async (name: string) =>
    k.docker.listContainers({ all: true, filters: { label: [`kiver.service=${name}`, `kiver.node=${k.node}`] } });

  /** Creates a service running CMD, waits until every replica runs and has written its boot line. */
  async function running(name: string, replicas: number, extra: Record<string, unknown> = {}): Promise<ServiceView> {
    await k.client.post('/v1/services', { name, image: IMAGE, command: CMD, replicas, memory: 32 * 2 ** 20, ...extra });
    const s = await allRunning(name, replicas);
    for (const r of s.replicas) await until(`${r.id} boot line written`, async () => existsSync(boots(name, r.ordinal)));
    return s;
  }

  /** Deletes a service (purging its data) and waits until it and its containers are gone. */
  async function remove(name: string): Promise<void> {
    await k.client.delete(`/v1/services/${name}?purge=true`);
    await until(`${name} gone`, async () => (await k.client.get<ServiceView[]>('/v1/services')).every((s) => s.name !== name) &&
      (await containersOf(name)).length === 0, 60_000);
  }

  it('creates a 3-replica service whose containers run with Kiver labels, mounts and limits', async () => {
    const created = await k.cli('service', 'create', 'web', '--image', IMAGE, '--cmd', CMD[2], '--cpu', '0.25', '--memory', '64m', '--port', '8080', '--env', 'GREETING=hi', '--secret-env', 'TOKEN=s3cret');
    assert.equal(created.code, 0, created.stderr);
    const s = await allRunning('web', 3);
    assert.deepEqual(s.replicas.map((r) => r.ordinal), [0, 1, 2]);
    const ports = new Set(s.replicas.map((r) => r.ports[0].host));
    assert.equal(ports.size, 3, 'each replica got its own host port');
    for (const r of s.replicas) {
      const info = await k.docker.getContainer(r.containerId!).inspect();
      assert.equal(info.Name, `/kiver-web-${r.ordinal}`);
      assert.equal(info.Config.Labels['kiver.service'], 'web');
      assert.equal(info.Config.Labels['kiver.replica'], `web/${r.ordinal}`);
      assert.equal(info.Config.Labels['kiver.uid'], r.uid);
      assert.equal(info.HostConfig.RestartPolicy?.Name, 'always');
      assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
      assert.equal(info.HostConfig.CpuShares, 256);
      assert.ok(info.Config.Env.includes('GREETING=hi'));
      assert.ok(info.Config.Env.includes('TOKEN=s3cret'), 'secret env reaches the container');
      assert.ok(info.HostConfig.Binds?.includes(`${join(k.dataRoot, 'web', String(r.ordinal))}:/data`));
      assert.ok(info.HostConfig.Binds?.includes(`${join(k.logRoot, 'web', String(r.ordinal))}:/log`));
      await until('boot line written', async () => existsSync(join(k.dataRoot, 'web', String(r.ordinal), 'boots')));
    }
    // The agent's log guard links each replica's nested log file into the flat shipper dir.
    const shipper = join(k.logRoot, '.shipper');
    await until('log links', async () => readdirSync(shipper).filter((f) => f.startsWith('web.')).length === 3);
    for (const r of s.replicas) {
      const link = readdirSync(shipper).find((f) => f.startsWith(`web.${r.ordinal}.`))!;
      assert.match(link, /main\.log$/);
      assert.equal(readFileSync(join(shipper, link), 'utf8'), 'up\n');
    }
    const ls = await k.cli('service', 'ls');
    assert.match(ls.stdout, /^web\s+kiver\/busybox:latest\s+3\/3/m);
    const json = JSON.parse((await k.cli('node', 'ls', '-o', 'json')).stdout);
    assert.equal(json.find((n: { name: string }) => n.name === k.node).ready, true);
    await remove('web');
  });

  /** Kills replica 0's container of a fresh service one way, then checks the restart is visible and the data kept. */
  async function killAndCheck(name: string, how: (containerId: string) => Promise<void>) {
    const before_ = (await running(name, 1)).replicas[0];
    const linesBefore = bootLines(name, 0);
    await how(before_.containerId!);
    const after_ = await until('restart visible in status', async () => {
      const r = (await get(name)).replicas[0];
      return r.restartCount === before_.restartCount + 1 && r.state === 'running' ? r : false;
    });
    assert.equal(after_.containerId, before_.containerId, 'same container, restarted');
    await until('another boot line', async () => bootLines(name, 0).length === linesBefore.length + 1);
    assert.ok(readFileSync(boots(name, 0), 'utf8').startsWith(linesBefore.join('\n')), 'earlier data kept');
  }

  it('a crashed container (its process killed) is restarted by Docker; status shows it; data is kept', async () => {
    await killAndCheck('crashed', async (id) => {
      const pid = (await k.docker.getContainer(id).inspect()).State.Pid;
      process.kill(pid, 'SIGKILL');
    });
    await remove('crashed');
  });

  it('docker kill: the container is restarted (by the agent: Docker 20.10 treats kill as a manual stop); status shows it; data is kept', async () => {
    await killAndCheck('killed', async (id) => {
      await k.docker.getContainer(id).kill();
    });
    const evs = await k.client.get<KiverEvent[]>('/v1/events?object=replica/killed/0');
    assert.ok(evs.some((e) => e.reason === 'Restarted'), JSON.stringify(evs));
    await remove('killed');
  });

  it('kill -9 of Kiver leaves containers running; the restarted agent adopts them without recreating', async () => {
    const before_ = (await running('adopt', 3)).replicas;
    await k.kill('SIGKILL');
    try {
      for (const r of before_) {
        const info = await k.docker.getContainer(r.containerId!).inspect();
        assert.equal(info.State.Running, true, `${r.id} still running without Kiver`);
      }
    } finally {
      await k.start();
    }
    const s = await allRunning('adopt', 3);
    assert.deepEqual(s.replicas.map((r) => r.containerId), before_.map((r) => r.containerId), 'same container ids');
    assert.equal((await containersOf('adopt')).length, 3, 'no extra containers');
    await remove('adopt');
  });

  it('rolling update replaces one replica at a time and the new spec reaches every replica', async () => {
    const before_ = (await running('roll', 3)).replicas;
    const linesBefore = before_.map((r) => bootLines('roll', r.ordinal));
    let maxDown = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await get('roll');
        const down = s.replicas.filter((r) => r.desired === 'run' && r.state !== 'running').length;
        maxDown = Math.max(maxDown, down);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const res = await k.cli('service', 'update', 'roll', '--cmd', `${CMD[2]} # v2`, '--wait', '--timeout', '90');
    sampling = false;
    await sampler;
    assert.equal(res.code, 0, res.stderr);
    const s = await get('roll');
    assert.equal(s.generation, 2);
    assert.deepEqual(s.replicas.map((r) => [r.ordinal, r.generation, r.state]), [[0, 2, 'running'], [1, 2, 'running'], [2, 2, 'running']]);
    for (const [i, r] of s.replicas.entries()) {
      assert.notEqual(r.containerId, before_[i].containerId, `${r.id}: a new container`);
      const info = await k.docker.getContainer(r.containerId!).inspect();
      assert.equal(info.Config.Labels['kiver.generation'], '2');
      assert.match(info.Config.Cmd!.join(' '), /# v2/);
      // Same data directory: the new container appended exactly one boot line to the old ones.
      await until(`${r.id}: boot line of the new container`, async () => bootLines('roll', r.ordinal).length === linesBefore[i].length + 1);
      assert.deepEqual(bootLines('roll', r.ordinal).slice(0, -1), linesBefore[i], `${r.id}: earlier data kept`);
    }
    assert.equal((await containersOf('roll')).length, 3, 'old containers removed');
    assert.ok(maxDown <= 1, `at most one replica down during the rollout (saw ${maxDown})`);
    await remove('roll');
  });

  it('cpu policies map to CpuShares, CpusetCpus and CpuQuota', async () => {
    const shared = (await running('shared', 1)).replicas[0];
    const pinned = (await running('pinned', 1, { cpu: 1, cpuPolicy: 'cpuset' })).replicas[0];
    const capped = (await running('capped', 1, { cpu: 0.2, cpuPolicy: 'quota' })).replicas[0];
    const p = await k.docker.getContainer(pinned.containerId!).inspect();
    assert.equal(p.HostConfig.CpusetCpus, pinned.cpuset!.join(','));
    const q = await k.docker.getContainer(capped.containerId!).inspect();
    assert.equal(q.HostConfig.CpuQuota, 20000);
    assert.equal(q.HostConfig.CpuPeriod, 100000);
    // Shared containers stay off the pinned core.
    await until('shared pool excludes the pinned core', async () => {
      const w = await k.docker.getContainer(shared.containerId!).inspect();
      return w.HostConfig.CpusetCpus !== '' && !w.HostConfig.CpusetCpus!.split(',').includes(String(pinned.cpuset![0]));
    });
    for (const name of ['pinned', 'capped', 'shared']) await remove(name);
  });

  it('a missing image and a crashing command are explained in status and events', async () => {
    await k.client.post('/v1/services', { name: 'noimg', image: 'kiver/does-not-exist:1', replicas: 1, memory: 32 * 2 ** 20 });
    const r = await until('image missing reported', async () => {
      const s = await get('noimg');
      return s.replicas[0]?.state === 'failed' ? s.replicas[0] : false;
    });
    assert.match(r.lastError!, /image kiver\/does-not-exist:1 is not on node .*registry/);
    await k.client.post('/v1/services', { name: 'crashy', image: IMAGE, command: ['/bin/sh', '-c', 'exit 3'], replicas: 1, memory: 32 * 2 ** 20 });
    const c = await until('crash loop reported', async () => {
      const s = await get('crashy');
      return s.replicas[0]?.state === 'crashloop' ? s.replicas[0] : false;
    }, 60_000);
    assert.match(c.lastError!, /code 3/);
    const evs = await k.client.get<KiverEvent[]>('/v1/events?object=service/crashy');
    assert.ok(evs.some((e) => e.reason === 'CrashLoop'), JSON.stringify(evs));
    const ev2 = await k.client.get<KiverEvent[]>('/v1/events?object=service/noimg');
    assert.ok(ev2.some((e) => e.reason === 'ImageMissing'));
    await remove('noimg');
    await remove('crashy');
  });

  it('scale down removes the extra containers and keeps their data', async () => {
    await running('shrink', 3);
    const res = await k.cli('service', 'scale', 'shrink', '1', '--wait');
    assert.equal(res.code, 0, res.stderr);
    await until('only one container left', async () => (await containersOf('shrink')).length === 1);
    await until('only replica 0 left', async () => (await get('shrink')).replicas.map((r) => r.ordinal).join() === '0');
    assert.ok(existsSync(boots('shrink', 2)), 'data of removed replica kept');
    await remove('shrink');
  });

  it('delete removes containers and keeps data; --purge removes data too', async () => {
    await running('keep', 1);
    await running('tmp', 2);
    const del = await k.cli('service', 'delete', 'keep');
    assert.equal(del.code, 0, del.stderr);
    const purge = await k.cli('service', 'delete', 'tmp', '--purge');
    assert.equal(purge.code, 0, purge.stderr);
    await until('services gone', async () => (await k.client.get<ServiceView[]>('/v1/services')).every((s) => s.name !== 'keep' && s.name !== 'tmp'));
    await until('containers gone', async () => (await containersOf('keep')).length + (await containersOf('tmp')).length === 0);
    assert.ok(existsSync(boots('keep', 0)), 'keep data kept');
    await until('tmp data purged', async () => !existsSync(join(k.dataRoot, 'tmp', '0')) && !existsSync(join(k.dataRoot, 'tmp')));
    const get404 = await k.cli('service', 'get', 'keep');
    assert.equal(get404.code, 3, 'exit code 3: not found');
    assert.match(get404.stderr, /^kiver: service keep not found\n$/);
  });
});

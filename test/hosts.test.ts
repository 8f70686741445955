/**
 * The test-host harness itself (test/harness/hosts.ts): hosts come up with their own
 * dockerd in their own namespace, traffic crosses the shared bridge (host to host, root
 * namespace to host, host to a server in the root namespace), agents join a server, and
 * destroy() leaves nothing behind — also after a killed host, and sweepStale() after a
 * process that died without cleaning up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readlink, rm } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, sweepStale, listRuns, HOSTS_JS, type TestHosts, type TestHost } from './harness/hosts.js';
import { listProcs, mountsUnder, netnsNames, linkNames } from './harness/hosts-sys.js';
import { runContainer } from './harness/docker.js';
import { until } from './harness/kiver.js';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import type { NodeView } from '../src/model/node.js';
import type { ServiceView } from '../src/model/service.js';

const IMAGE = 'kiver/busybox:latest';

/** Everything a run could leave, checked from the outside (not through the harness's own bookkeeping). */
function assertNothingLeft(run: TestHosts): void {
  assert.deepEqual(netnsNames().filter((n) => n.startsWith(`kvh${run.id}`)), [], 'no namespace');
  assert.deepEqual(linkNames().filter((n) => n.startsWith(run.bridge)), [], 'no bridge or veth');
  const procs = listProcs().filter((p) => p.state !== 'Z' && p.argv.some((a) => a.includes(run.dir)));
  assert.deepEqual(procs.map((p) => `${p.pid} ${p.argv.join(' ').slice(0, 120)}`), [], 'no process');
  assert.deepEqual(mountsUnder(run.dir), [], 'no mount');
  assert.equal(existsSync(run.dir), false, 'no directory');
  assert.deepEqual(run.leftovers(), []);
}

/** A busybox httpd serving `body` on the host's bridge address (host networking). */
async function serve(h: TestHost, port: number, body: string): Promise<string> {
  const c = await h.docker.createContainer({
    Image: IMAGE,
    Cmd: ['sh', '-c', `mkdir -p /www && echo ${body} > /www/index.html && exec httpd -f -p ${h.ip}:${port} -h /www`],
    Labels: { 'kiver.test': 'hosts' },
    HostConfig: { NetworkMode: 'host' },
  });
  await c.start();
  return c.id;
}

describe('test hosts', () => {
  before(async () => {
    const swept = await sweepStale();
    if (swept.length > 0) console.log(`swept leftovers of earlier runs: ${swept.join('; ')}`);
  });

  it('two hosts: own dockerd in own namespace, traffic across the bridge, nothing left after destroy', async (t) => {
    const t0 = Date.now();
    const run = await createHosts(2);
    t.diagnostic(`create 2 hosts: ${Date.now() - t0} ms (${JSON.stringify(run.timings)})`);
    let httpServer: Server | undefined;
    try {
      const [a, b] = run.hosts;
      assert.notEqual(a.ip, b.ip);
      const rootNs = await readlink('/proc/self/ns/net');
      for (const h of run.hosts) {
        // Its dockerd runs in the host's namespace, with the host's own directories.
        const pid = h.dockerdPid();
        assert.ok(pid, `dockerd of ${h.name} runs`);
        const ns = await readlink(`/proc/${pid}/ns/net`);
        assert.equal(ns, `net:[${statSync(h.netnsPath).ino}]`, `dockerd of ${h.name} is in ${h.netns}`);
        assert.notEqual(ns, rootNs);
        const info = await h.docker.info();
        assert.equal(info.DockerRootDir, join(h.dir, 'docker'));
        assert.equal(info.LiveRestoreEnabled, true);
        assert.ok((await h.docker.listImages()).some((i) => i.RepoTags?.includes(IMAGE)), `${IMAGE} loaded into ${h.name}`);
      }

      // Host A serves; host B fetches over the bridge: host network, docker0 (NAT), and a published port.
      await serve(a, 8080, 'hello-from-a');
      await a.docker.createContainer({
        Image: IMAGE, Cmd: ['sh', '-c', 'mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www'],
        ExposedPorts: { '80/tcp': {} }, HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '8081' }] } },
      }).then((c) => c.start());
      const wget = (network: string, url: string) =>
        until(`${url} from ${b.name} (${network})`, async () => {
          const r = await runContainer(b.docker, IMAGE, ['wget', '-q', '-O', '-', url], { network, timeoutMs: 10_000 });
          if (r.exitCode !== 0) throw new Error(`wget exited with ${r.exitCode}: ${r.stderr.trim()}`);
          return r.stdout.trim();
        }, 15_000, 200);
      assert.equal(await wget('host', `http://${a.ip}:8080/`), 'hello-from-a');
      assert.equal(await wget('bridge', `http://${a.ip}:8080/`), 'hello-from-a');
      assert.equal(await wget('host', `http://${a.ip}:8081/`), 'published');

      // The root namespace reaches a host through the bridge ...
      const res = await until('root namespace to host A', async () => (await fetch(`http://${a.ip}:8080/`)).text());
      assert.equal(res.trim(), 'hello-from-a');
      // ... and a server in the root namespace on the bridge address is reachable from the hosts.
      httpServer = createServer((_, r) => r.end('root-server'));
      await new Promise<void>((r) => httpServer!.listen(0, run.bridgeIp, r));
      const port = (httpServer.address() as { port: number }).port;
      assert.equal(await wget('host', `${run.serverUrl(port)}/`), 'root-server');
      const fromNs = await b.exec(['busybox', 'wget', '-q', '-O', '-', `${run.serverUrl(port)}/`], { allowFail: true });
      if (fromNs.code !== 127) assert.equal(fromNs.stdout, 'root-server', 'a plain process in the namespace too');
    } finally {
      httpServer?.close();
      const t1 = Date.now();
      await run.destroy();
      t.diagnostic(`destroy 2 hosts: ${Date.now() - t1} ms`);
    }
    assertNothingLeft(run);
    await run.destroy(); // idempotent
  });

  it('agents join a server in the root namespace; a killed host comes back; destroy after a mess leaves nothing', async (t) => {
    const run = await createHosts(2);
    const dir = await mkdtemp(join(tmpdir(), 'kiver-hosts-server-'));
    let server: KiverServer | undefined;
    try {
      server = await KiverServer.start({ dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', 'silent'), nodeLeaseTtl: 15 });
      const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
      await Promise.all(run.hosts.map((h) => h.startAgent({ servers: server!.url, token: server!.tokens.join })));
      const nodes = await until('both nodes ready', async () => {
        const ns = await admin.get<NodeView[]>('/v1/nodes');
        return ns.filter((n) => n.ready).length === 2 ? ns : false;
      });
      assert.deepEqual(nodes.map((n) => [n.name, n.address]).sort(), run.hosts.map((h) => [h.name, h.ip]).sort());

      // Two replicas: one per host, each in that host's dockerd.
      await admin.post('/v1/services', { name: 'web', image: 'kiver/busybox', command: ['sleep', '100000'], replicas: 2, cpu: 0.1, memory: 2 ** 26 });
      await until('web running on both hosts', async () => {
        const s = await admin.get<ServiceView>('/v1/services/web');
        return s.status.running === 2 && new Set(s.replicas.map((r) => r.node)).size === 2;
      }, 60_000);
      for (const h of run.hosts) assert.equal((await h.docker.listContainers({ filters: { label: ['kiver.service=web'] } })).length, 1, h.name);

      // kill -9 of an agent and a new one within the node grace: it adopts its container.
      const [a, b] = run.hosts;
      const before = (await a.docker.listContainers({ filters: { label: ['kiver.service=web'] } }))[0].Id;
      const oldAgent = a.agentPid();
      await a.killAgent();
      assert.equal(a.agentPid(), undefined);
      await a.start();
      assert.ok(a.agentPid() && a.agentPid() !== oldAgent, 'a new agent process');

      // Power off host B (agent, dockerd, containers, link) and bring it back.
      const t0 = Date.now();
      await b.powerOff();
      t.diagnostic(`power off: ${Date.now() - t0} ms`);
      assert.equal(b.dockerdPid(), undefined);
      assert.equal(b.processes().length, 0, 'nothing runs on a powered-off host');
      assert.equal(await a.exec(['busybox', 'ping', '-c', '1', '-W', '1', b.ip], { allowFail: true }).then((r) => r.code === 0), false, 'unreachable');
      const t1 = Date.now();
      await b.start();
      t.diagnostic(`power on (dockerd + agent): ${Date.now() - t1} ms`);
      assert.ok(b.agentPid(), 'the agent came back with the host');
      const onA = await a.docker.listContainers({ all: true, filters: { label: ['kiver.service=web'] } });
      assert.ok(onA.some((c) => c.Id === before && c.State === 'running'), 'host-0 container adopted, not recreated');

      // Leave a mess: host A's dockerd killed (containers still running), host B powered off.
      await a.kill();
      await b.powerOff();
    } finally {
      const t2 = Date.now();
      try {
        await run.destroy(); // first: the agents' long polls would hold server.close() up
        t.diagnostic(`destroy after the mess: ${Date.now() - t2} ms`);
      } finally {
        await server?.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
    assertNothingLeft(run);
  });

  it('a process that exits without destroy() tears its hosts down on exit', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const m = await import(${JSON.stringify(HOSTS_JS)});
      const run = await m.createHosts(1, { images: [] });
      process.stdout.write(run.dir + '\\n');
      process.exit(0);
    `], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    await new Promise((r) => child.on('exit', r));
    const dir = out.split('\n')[0]; // then the exit hook's "destroyed DIR in N ms"
    assert.match(dir, /kvh-[0-9a-f]{6}$/, err);
    assert.match(out, /destroyed /);
    assert.match(err, /were not destroyed; tearing them down/);
    assert.equal(existsSync(dir), false, `${dir} is gone`);
    assert.deepEqual(netnsNames().filter((n) => n.startsWith(`kvh${dir.slice(-6)}`)), []);
    assert.deepEqual(listProcs().filter((p) => p.state !== 'Z' && p.argv.some((a) => a.includes(dir))).map((p) => p.pid), []);
  });

  it('sweepStale() removes the hosts of a process that died without destroy()', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const m = await import(${JSON.stringify(HOSTS_JS)});
      const run = await m.createHosts(1, { images: [] });
      await run.hosts[0].docker.ping();
      process.stdout.write(run.dir + '\\n');
      process.kill(process.pid, 'SIGKILL');
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((r) => child.on('exit', r));
    const dir = out.trim();
    assert.ok(dir && existsSync(dir), `the child created ${dir}`);
    const run = listRuns().find((r) => r.dir === dir);
    assert.ok(run, 'listed');
    assert.equal(run.stale, true, 'its owner is gone');
    assert.ok(run.hosts[0].dockerdPid(), 'its dockerd outlived it');
    // A live run of this process is not touched by the sweep.
    const mine = await createHosts(1, { images: [] });
    try {
      const removed = await sweepStale();
      assert.ok(removed.includes(`run ${dir}`), removed.join('; '));
      assertNothingLeft(run);
      assert.ok(await mine.hosts[0].dockerAnswers(), 'a live run survives the sweep');
    } finally {
      await mine.destroy();
    }
    assertNothingLeft(mine);
  });
});

after(async () => {
  // Anything a failed test above left (the runs register exit hooks too).
  for (const run of listRuns()) if (run.state.owner.kind === 'process' && run.state.owner.pid === process.pid) await run.destroy().catch(() => undefined);
});

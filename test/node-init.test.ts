/**
 * `kiver node init --role compute` on a real Debian root: a debootstrap'd bookworm root
 * (cached, unpacked fresh) in a test host's network namespace, its log root a tmpfs of
 * its own. apt installs docker.io into the root for real; dockerd and the agent run
 * under Kiver's supervisor (no systemd here) with the root's configuration. Checked:
 * --plan changes nothing; bad input changes nothing; apply; a second run has nothing
 * to do; the agent joins; a replica runs; the shipper runs with its quotas and ships a
 * replica's log line to a TCP sink; node leave removes agent and shipper, keeps data.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createHosts, sweepStale, type TestHost, type TestHosts } from './harness/hosts.js';
import { freePort, KIVER_BIN, until } from './harness/kiver.js';
import { diff, fingerprint } from './harness/root-fingerprint.js';
import { ensureDebs, keepDebs, makeNodeRoot, NODE_PACKAGES } from './harness/node-root.js';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { NodeHost } from '../src/bootstrap/node-host.js';
import { programPid, stopSupervisor } from '../src/bootstrap/supervisor.js';
import type { NodeView } from '../src/model/node.js';
import type { ServiceView } from '../src/model/service.js';

interface CmdOut { code: number; out: string }

/** Runs `kiver ARGS` in the host's network namespace (as `kiver node init` runs on a node). */
function kiver(h: TestHost, args: string[], env: Record<string, string> = {}): Promise<CmdOut> {
  return new Promise((res) => {
    const p = spawn('nsenter', [`--net=${h.netnsPath}`, '--', process.execPath, KIVER_BIN, ...args], { env: { ...process.env, KIVER_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => res({ code: code ?? -1, out }));
  });
}


describe('kiver node init --role compute on a fresh Debian root', () => {
  let hosts: TestHosts;
  let h: TestHost;
  let root: string;
  let node: NodeHost;
  let server: KiverServer;
  let admin: ApiClient;
  let dataDir: string;
  let sink: Server;
  let received = '';
  let base: string[];

  before(async () => {
    await sweepStale();
    hosts = await createHosts(1, { images: [], names: ['node-a'] });
    h = hosts.hosts[0];
    await h.stopDockerd(); // this host's dockerd is the one node init installs and starts
    root = join(h.dir, 'r'); // under the run directory: destroy() finds every mount and process of it
    await ensureDebs(NODE_PACKAGES);
    await makeNodeRoot(root);
    node = new NodeHost(root);
    mkdirSync(join(root, 'app/log'), { recursive: true });
    await run(['mount', '-t', 'tmpfs', '-o', 'size=64m,mode=1777', 'kiver-test-log', join(root, 'app/log')]); // a log partition of its own
    dataDir = await mkdtemp(join(tmpdir(), 'kiver-node-init-'));
    server = await KiverServer.start({ dataDir, listen: `${hosts.bridgeIp}:0`, log: createLogger('test', 'silent'), nodeLeaseTtl: 10 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    sink = createServer((s) => s.on('data', (d) => (received += d.toString())));
    await new Promise<void>((r) => sink.listen(0, hosts.bridgeIp, () => r()));
    const port = (sink.address() as { port: number }).port;
    base = ['node', 'init', '--role', 'compute', '--root', root, '--server', server.url, '--join-token', server.tokens.join,
      '--node', 'node-a', '--address', h.ip, '--ship-logs-to', `${hosts.bridgeIp}:${port}`];
  });

  after(async () => {
    if (node) {
      try {
        const d = new Docker({ socketPath: node.dockerSocket });
        for (const c of await d.listContainers({ all: true })) await d.getContainer(c.Id).remove({ force: true });
      } catch { /* dockerd not up */ }
      await stopSupervisor(node).catch(() => undefined);
      keepDebs(root);
      for (const m of ['app/log', 'proc']) await run(['umount', join(root, m)]).catch(() => undefined);
    }
    sink?.close();
    await server?.close();
    await hosts?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('--plan lists every change and changes nothing', async () => {
    const before = fingerprint(root, ['/etc/', '/app/']);
    const r = await kiver(h, [...base, '--plan']);
    assert.equal(r.code, 0, r.out);
    for (const want of [
      /ok\s+os: Debian GNU\/Linux 12/, /ok\s+log root: \/app\/log is on its own filesystem/, /server: .* accepts the join token/,
      /supervisor — --root/, /packages: apt-get install docker\.io/, /docker daemon config: set live-restore=true, userland-proxy=false/,
      /dirs: create \/app\/data \(0755\)/, /create \/etc\/kiver\/node\.credential \(0600, secret\)/, /create \/etc\/kiver\/supervise\/agent\.json/,
      /start the supervisor/, /log shipper: write \/etc\/kiver\/shipper\.json; the agent runs kiver-log-shipper \(kiver\/rsyslog, 0\.2 CPU, 128 MiB\) .*; build kiver\/rsyslog/,
      /nothing was changed \(--plan\)/,
    ]) assert.match(r.out, want);
    assert.doesNotMatch(r.out, new RegExp(server.tokens.join), 'the join token is never printed');
    assert.deepEqual(diff(before, fingerprint(root, ['/etc/', '/app/'])), []);
  });

  it('bad input: clear errors and no change', async () => {
    const before = fingerprint(root, ['/etc/', '/app/']);
    const closed = `http://127.0.0.1:${await freePort()}`;
    // Exit codes by error class (cli/exit-codes.ts): 2 input, 6 unavailable, 5 denied, 1 other.
    const cases: [string[], RegExp, number][] = [
      [['node', 'init', '--role', 'storage', '--root', root, '--server', server.url, '--join-token', 'x', '--yes'], /--role: expected one of compute, control, got "storage"/, 2],
      [[...base.map((a) => (a === server.url ? closed : a)), '--yes'], /--server: no Kiver server reachable \(http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\)/, 6],
      [[...base.map((a) => (a === server.tokens.join ? 'kiver_join_wrong' : a)), '--yes'], /--join-token: the server .* rejected the join token \(HTTP 401\)/, 5],
      [[...base, '--log-root', '/srv/log', '--yes'], /log root: \/srv\/log is on the same filesystem as \/: .* or pass --allow-shared-log-root/, 1],
    ];
    for (const [args, want, code] of cases) {
      const r = await kiver(h, args);
      assert.equal(r.code, code, r.out);
      assert.match(r.out, want);
      assert.match(r.out, /nothing was changed|--role/);
    }
    mkdirSync(join(root, 'etc/docker'), { recursive: true });
    writeFileSync(join(root, 'etc/docker/daemon.json'), '{"debug": true,\n');
    const withBad = fingerprint(root, ['/etc/', '/app/']);
    const r = await kiver(h, [...base, '--yes']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /\/etc\/docker\/daemon\.json is not valid JSON .* nothing was changed/);
    assert.deepEqual(diff(withBad, fingerprint(root, ['/etc/', '/app/'])), []);
    // A valid file with the user's own keys: kept through the merge (checked after apply).
    writeFileSync(join(root, 'etc/docker/daemon.json'), '{"debug": true, "log-opts": {"labels": "team"}}\n');
    assert.ok(before.size > 0);
  });

  it('apply: docker.io installed, daemon.json merged, dockerd and the agent supervised, the node joins', async () => {
    const r = await kiver(h, [...base, '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done packages: installed docker\.io/);
    assert.match(r.out, /done supervisor: node node-a joined/);
    assert.match(r.out, /done log shipper: wrote \/etc\/kiver\/shipper\.json; the agent runs kiver-log-shipper/);
    const dj = JSON.parse(readFileSync(join(root, 'etc/docker/daemon.json'), 'utf8'));
    assert.equal(dj.debug, true, 'other keys kept');
    assert.deepEqual(dj['log-opts'], { labels: 'team', 'max-size': '50m', 'max-file': '3' });
    assert.equal(dj['live-restore'], true);
    assert.equal(dj['userland-proxy'], false);
    assert.equal(dj['data-root'], join(root, 'var/lib/docker'));
    assert.equal(lstatSync(join(root, 'etc/kiver/node.credential')).mode & 0o777, 0o600);
    assert.equal(lstatSync(join(root, 'app/log')).mode & 0o7777, 0o755);
    const n = await admin.get<NodeView>('/v1/nodes/node-a');
    assert.equal(n.ready, true);
    assert.equal(n.address, h.ip);
  });

  it('a second run has nothing to do', async () => {
    const r = await kiver(h, [...base, '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /nothing to do: this host already is a compute node/);
    assert.doesNotMatch(r.out, /^\s+\+ /m);
  });

  it('a non-reloadable daemon.json change restarts dockerd; containers keep running (live-restore)', async () => {
    const dockerd = programPid(node, 'dockerd');
    const docker = new Docker({ socketPath: node.dockerSocket });
    const started = (await docker.getContainer('kiver-log-shipper').inspect()).State.StartedAt;
    const plan = await kiver(h, [...base, '--docker-log-max-size', '20m', '--plan']);
    assert.match(plan.out, /\+ docker daemon config: set log-opts=.*"max-size":"20m"/);
    assert.match(plan.out, /\+ supervisor: restart dockerd \(log-opts changed; live-restore keeps containers running\)/);
    const r = await kiver(h, [...base, '--docker-log-max-size', '20m', '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done supervisor: restarted dockerd \(log-opts changed\)/);
    assert.notEqual(programPid(node, 'dockerd'), dockerd);
    const after = await docker.getContainer('kiver-log-shipper').inspect();
    assert.equal(after.State.Running, true);
    assert.equal(after.State.StartedAt, started, 'the shipper was not restarted');
    const back = await kiver(h, [...base, '--yes']); // back to the defaults for the next tests
    assert.equal(back.code, 0, back.out);
  });

  it("the agent's Docker watchdog command restarts the supervised dockerd", async () => {
    const agent = JSON.parse(readFileSync(join(root, 'etc/kiver/supervise/agent.json'), 'utf8')) as { argv: string[] };
    const restart = JSON.parse(agent.argv[agent.argv.indexOf('--docker-restart-cmd') + 1]) as string[];
    assert.deepEqual(restart.slice(2), ['node', 'supervise', '--restart', 'dockerd', '--root', root]);
    const before = programPid(node, 'dockerd');
    const r = await kiver(h, restart.slice(2));
    assert.equal(r.code, 0, r.out);
    assert.notEqual(programPid(node, 'dockerd'), before);
    await until('dockerd answering again', async () => (await new Docker({ socketPath: node.dockerSocket }).ping()).toString() === 'OK', 60_000, 200);
  });

  it('the shipper runs with its quotas and ships a replica\'s log line to the TCP sink', async () => {
    const docker = new Docker({ socketPath: node.dockerSocket });
    const info = await docker.getContainer('kiver-log-shipper').inspect();
    assert.equal(info.State.Running, true);
    assert.equal(info.HostConfig.NanoCpus, 200_000_000);
    assert.equal(info.HostConfig.Memory, 128 * 2 ** 20);
    // The replica image, copied from this machine's Docker.
    const img = await new Docker().getImage('kiver/busybox:latest').get();
    await new Promise<void>((ok, fail) => docker.loadImage(img, {}, (err, s) => (err ? fail(err) : docker.modem.followProgress(s!, (e) => (e ? fail(e) : ok())))));
    const marker = `kiver-node-init-${Date.now()}`;
    await admin.post('/v1/services', { name: 'logger', image: 'kiver/busybox', replicas: 1, cpu: 0.1, memory: 2 ** 25,
      command: ['/bin/sh', '-c', `echo ${marker} >> /log/app.log; exec sleep 3600`] });
    await until('logger running on node-a', async () => {
      const v = await admin.get<ServiceView>('/v1/services/logger');
      return v.status.running === 1;
    }, 60_000);
    await until(`the marker at the TCP sink (got ${received.length} bytes)`, async () => received.includes(marker), 60_000, 200);
    assert.match(received, new RegExp(`kiver .*${marker}`));
  });

  it('the agent keeps the shipper running: removed or stopped, it is back; a new quota applies without restarting the agent', async () => {
    const docker = new Docker({ socketPath: node.dockerSocket });
    const shipper = () => docker.getContainer('kiver-log-shipper');
    const agent = programPid(node, 'agent');
    const backAfter = async (what: string, id: string) => until(`the agent re-created the shipper after ${what}`, async () => {
      const i = await shipper().inspect().catch(() => undefined);
      return i && i.Id !== id && i.State.Running ? i : undefined;
    }, 60_000, 250);
    let id = (await shipper().inspect()).Id;
    await shipper().remove({ force: true });
    id = (await backAfter('docker rm -f', id)).Id;
    await shipper().stop({ t: 1 });
    await backAfter('docker stop', id);
    const r = await kiver(h, [...base, '--shipper-cpu', '0.3', '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /\+ log shipper: update \/etc\/kiver\/shipper\.json; the agent runs kiver-log-shipper \(kiver\/rsyslog, 0\.3 CPU/);
    assert.equal((await shipper().inspect()).HostConfig.NanoCpus, 300_000_000);
    assert.equal(programPid(node, 'agent'), agent, 'the agent was not restarted');
    const back = await kiver(h, [...base, '--yes']);
    assert.equal(back.code, 0, back.out);
    assert.equal((await shipper().inspect()).HostConfig.NanoCpus, 200_000_000);
  });

  it('node leave: the agent and shipper go, data stays', async () => {
    await admin.delete('/v1/services/logger');
    await until('logger gone', async () => (await admin.get<ServiceView[]>('/v1/services')).length === 0, 60_000);
    const r = await kiver(h, ['node', 'leave', '--root', root], { KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done drain: node node-a drained/);
    assert.match(r.out, /done agent: stopped the agent/);
    assert.match(r.out, /done log shipper: removed kiver-log-shipper/);
    assert.equal(programPid(node, 'agent'), undefined);
    assert.equal(existsSync(join(root, 'etc/kiver/supervise/agent.json')), false);
    assert.equal(existsSync(join(root, 'etc/kiver/node.credential')), false);
    assert.ok(existsSync(join(root, 'app/data/logger/0')), 'the replica data directory is kept');
    const cs = await new Docker({ socketPath: node.dockerSocket }).listContainers({ all: true, filters: { name: ['kiver-log-shipper'] } });
    assert.equal(cs.length, 0);
    assert.match(r.out, /done node record: node node-a removed from the cluster/);
    assert.deepEqual((await admin.get<NodeView[]>('/v1/nodes')).map((n) => n.name), [], 'not left registered and cordoned');
    rmSync(join(root, 'etc/kiver/node.json'), { force: true });
  });
});

function run(argv: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
    p.on('close', (c) => (c === 0 ? res() : rej(new Error(`${argv.join(' ')} exited ${c}`))));
  });
}

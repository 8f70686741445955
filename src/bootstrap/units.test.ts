import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeHost, CREDENTIAL_FILE } from './node-host.js';
import { nodeFiles, quoteArg } from './units.js';
import type { InitContext } from './context.js';

const settings = {
  dataRoot: '/app/data', logRoot: '/app/log', dockerRoot: '/var/lib/docker', dockerPackage: 'docker.io', logMaxSize: '50m', logMaxFile: 3,
  servers: ['http://cp1:7700', 'http://cp2:7700'], joinToken: 'kiver_join_secret', node: 'n1', address: '10.0.0.5', shipperCpu: 0.2, shipperMemory: 2 ** 27,
};

describe('node files', () => {
  it('systemd: a kiver-agent unit that reads the credential file; the token is only in that file (0600)', () => {
    const ctx: InitContext = { host: new NodeHost('/'), manager: 'systemd', s: settings };
    const files = nodeFiles(ctx);
    const unit = files.find((f) => f.path === '/etc/systemd/system/kiver-agent.service');
    assert.ok(unit);
    assert.match(unit.content, /^ExecStart=\S+ \S+kiver\.js agent --server http:\/\/cp1:7700,http:\/\/cp2:7700 --join-token-file \/etc\/kiver\/node\.credential --credential-file \/etc\/kiver\/node\.secret --node n1 --address 10\.0\.0\.5 --data-root \/app\/data --log-root \/app\/log --shipper-config \/etc\/kiver\/shipper\.json --docker-restart-cmd "systemctl restart docker"$/m);
    assert.match(unit.content, /^Restart=always$/m);
    assert.match(unit.content, /^KillMode=process$/m);
    const cred = files.find((f) => f.path === CREDENTIAL_FILE);
    assert.equal(cred?.mode, 0o600);
    assert.equal(cred?.content, 'kiver_join_secret\n');
    for (const f of files) if (f !== cred) assert.doesNotMatch(f.content, /kiver_join_secret/, f.path);
    assert.ok(!files.some((f) => f.path.includes('/supervise/')), 'no supervised programs under systemd');
  });

  it('supervisor, test root: dockerd gets its own socket, pid file and exec root under the root; the agent uses that socket', () => {
    const ctx: InitContext = { host: new NodeHost('/tmp/r'), manager: 'supervisor', s: settings };
    const files = nodeFiles(ctx);
    const dockerd = JSON.parse(files.find((f) => f.path === '/etc/kiver/supervise/dockerd.json')!.content);
    assert.deepEqual(dockerd.argv, ['dockerd', '--config-file', '/tmp/r/etc/docker/daemon.json', '-H', 'unix:///tmp/r/run/docker.sock', '--pidfile', '/tmp/r/run/docker.pid', '--exec-root', '/tmp/r/run/docker']);
    const agent = JSON.parse(files.find((f) => f.path === '/etc/kiver/supervise/agent.json')!.content);
    assert.equal(agent.env.DOCKER_HOST, 'unix:///tmp/r/run/docker.sock');
    assert.ok(agent.argv.includes('/tmp/r/etc/kiver/node.credential'));
    assert.ok(!files.some((f) => f.path.endsWith('.service')));
  });

  it('supervisor, real root, dockerd already running outside Kiver: no dockerd program', () => {
    const ctx: InitContext = { host: new NodeHost('/'), manager: 'supervisor', s: settings, foreignDockerd: true };
    assert.deepEqual(nodeFiles(ctx).map((f) => f.path).filter((p) => p.includes('/supervise/')), ['/etc/kiver/supervise/agent.json']);
  });

  it('ExecStart arguments: systemd specifiers and variables are doubled, spaces and quotes quoted, control characters refused', () => {
    assert.equal(quoteArg('/app/log'), '/app/log');
    assert.equal(quoteArg('50%'), '50%%', 'a literal % (systemd would expand %h, %n, ...)');
    assert.equal(quoteArg('$HOME'), '$$HOME', 'a literal $ (systemd would substitute the variable)');
    assert.equal(quoteArg('systemctl restart docker'), '"systemctl restart docker"');
    assert.equal(quoteArg('a "b" \\c'), '"a \\"b\\" \\\\c"');
    assert.throws(() => quoteArg('x\nExecStartPre=/bin/sh'), /control characters/);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeHost } from './node-host.js';
import { controlFiles, type ControlContext, type ControlSettings } from './control.js';
import { readEnvFile } from './supervisor.js';

const c: ControlSettings = { node: 'cp1', address: '10.0.0.1', clientPort: 2379, peerPort: 2380, apiPort: 7700, snapshotEverySeconds: 3600, snapshotKeep: 24, withMonitoring: false };

describe('control role files', () => {
  it('systemd: etcd over TLS for peers and clients, its bootstrap settings from the env file; the server on the local member with a client certificate', () => {
    const ctx: ControlContext = { host: new NodeHost('/'), manager: 'systemd', c };
    const files = controlFiles(ctx);
    const unit = (n: string) => files.find((f) => f.path === `/etc/systemd/system/${n}`)?.content ?? assert.fail(`no ${n}`);
    const etcd = unit('kiver-etcd.service');
    assert.match(etcd, /^Type=notify$/m);
    assert.match(etcd, /^EnvironmentFile=\/etc\/kiver\/etcd-cluster\.env$/m);
    assert.match(etcd, /^ExecStart=etcd --name cp1 --data-dir \/var\/lib\/kiver\/etcd --listen-client-urls https:\/\/10\.0\.0\.1:2379 .*--listen-peer-urls https:\/\/10\.0\.0\.1:2380 .*--client-cert-auth .*--peer-trusted-ca-file \/var\/lib\/kiver\/pki\/ca\.crt --peer-client-cert-auth/m);
    assert.doesNotMatch(etcd, /initial-cluster/, 'bootstrap settings only in the env file (a re-run after others joined changes no unit)');
    const server = unit('kiver-server.service');
    assert.match(server, /^After=kiver-etcd\.service$/m);
    assert.match(server, / server --data-dir \/var\/lib\/kiver --store etcd:\/\/10\.0\.0\.1:2379\?ca=\/var\/lib\/kiver\/pki\/ca\.crt&cert=\/var\/lib\/kiver\/pki\/etcd-client\.crt&key=\/var\/lib\/kiver\/pki\/etcd-client\.key --listen 10\.0\.0\.1:7700$/m);
    assert.match(unit('kiver-snapshots.service'), / admin snapshot schedule \/var\/lib\/kiver\/snapshots --every 3600s --keep 24 --store etcd:/);
    assert.ok(!files.some((f) => f.path.includes('monitoring')));
    assert.ok(!files.some((f) => f.path.includes('/supervise/')));
    const mon = controlFiles({ ...ctx, c: { ...c, withMonitoring: true } });
    assert.match(mon.find((f) => f.path.endsWith('kiver-monitoring.service'))!.content, / monitoring up --dir \/var\/lib\/kiver\/monitoring --kiver http:\/\/10\.0\.0\.1:7700 --token-file \/var\/lib\/kiver\/admin\.token$/m);
  });

  it('supervisor: etcd reads the env file, programs ordered etcd → server → snapshots', () => {
    const files = controlFiles({ host: new NodeHost('/tmp/r'), manager: 'supervisor', c });
    const progs = files.filter((f) => f.path.includes('/supervise/')).map((f) => JSON.parse(f.content) as { name: string; order: number; envFile?: string; argv: string[] });
    assert.deepEqual(progs.sort((a, b) => a.order - b.order).map((p) => p.name), ['etcd', 'server', 'snapshots']);
    assert.equal(progs[0].envFile, '/tmp/r/etc/kiver/etcd-cluster.env');
    assert.ok(progs[0].argv.includes('/tmp/r/var/lib/kiver/pki/etcd-member.crt'));
  });

  it("the supervisor's env file: KEY=VALUE lines, comments skipped, a missing file adds nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiver-env-'));
    try {
      writeFileSync(join(dir, 'e'), '# c\nETCD_INITIAL_CLUSTER=a=https://x:2380,b=https://y:2380\n\nBAD LINE\nETCD_INITIAL_CLUSTER_STATE=existing\n');
      assert.deepEqual(readEnvFile(join(dir, 'e')), { ETCD_INITIAL_CLUSTER: 'a=https://x:2380,b=https://y:2380', ETCD_INITIAL_CLUSTER_STATE: 'existing' });
      assert.deepEqual(readEnvFile(join(dir, 'none')), {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

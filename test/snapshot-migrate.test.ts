/**
 * The documented move from the embedded store to etcd: `kiver admin snapshot save`
 * from a SQLite data dir, `restore` into an empty etcd cluster → every object is
 * there; restoring into a non-empty store is refused.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { KIVER_BIN } from './harness/kiver.js';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { openStore } from '../src/store/open.js';

function kiver(...args: string[]) {
  return spawnSync(process.execPath, [KIVER_BIN, ...args], { encoding: 'utf8' });
}

describe('snapshot: SQLite → etcd', () => {
  let etcd: EtcdCluster;
  let dir: string;
  before(async () => {
    etcd = await EtcdCluster.start({ members: 1 });
    dir = await mkdtemp(join(tmpdir(), 'kiver-migrate-'));
  });
  after(async () => {
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('save from a SQLite data dir, restore into etcd, everything is back', async () => {
    const server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent') });
    const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    await admin.post('/v1/services', { name: 'a', image: 'kiver/busybox', replicas: 2, secretEnv: { PW: 'x' } });
    await admin.post('/v1/services', { name: 'b', image: 'kiver/redis', replicas: 1 });
    await server.close();

    const file = join(dir, 'snap.jsonl');
    const saved = kiver('admin', 'snapshot', 'save', file, '--data-dir', dir);
    assert.equal(saved.status, 0, saved.stderr);
    const url = `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    const restored = kiver('admin', 'snapshot', 'restore', file, '--store', url);
    assert.equal(restored.status, 0, restored.stderr);

    const sqlite = await openStore(`sqlite:${join(dir, 'kiver.db')}`);
    const e = await openStore(url);
    try {
      const want = (await sqlite.list('/kiver/')).kvs.filter((kv) => kv.lease === 0).map((kv) => [kv.key, kv.value]);
      const got = (await e.list('/kiver/')).kvs.map((kv) => [kv.key, kv.value]);
      assert.deepEqual(got, want);
      assert.ok(got.some(([k]) => k === '/kiver/services/a') && got.some(([k]) => k === '/kiver/tokens/admin'));
    } finally {
      await sqlite.close();
      await e.close();
    }
    // A server on etcd with the same data dir (tokens, secret key) serves the restored objects.
    const onEtcd = await KiverServer.start({ dataDir: dir, store: url, listen: '127.0.0.1:0', log: createLogger('test', 'silent') });
    try {
      const c = new ApiClient({ servers: [onEtcd.url], token: onEtcd.tokens.admin });
      assert.deepEqual((await c.get<{ name: string }[]>('/v1/services')).map((s) => s.name), ['a', 'b']);
    } finally {
      await onEtcd.close();
    }
    const again = kiver('admin', 'snapshot', 'restore', file, '--store', url);
    assert.equal(again.status, 4, "exit code 4: conflict");
    assert.match(again.stderr, /^kiver: the target store is not empty/);
  });
});

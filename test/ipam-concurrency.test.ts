/**
 * The figure: 10,000 concurrent allocations against one pool (a /16) give 10,000
 * distinct addresses, none lost — on SQLite (two allocators on one store) and on a
 * 3-member etcd (two allocators, each with its own etcd client, as two servers would be).
 * On SQLite also against a pool of exactly 10,000: all taken, the 10,001st refused.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/store/sqlite.js';
import { EtcdStore } from '../src/store/etcd.js';
import { EtcdCluster } from './harness/etcd-cluster.js';
import { concurrentClaims, type LoadResult } from './harness/ipam-load.js';

const N = 10_000;

function check(r: LoadResult): void {
  console.log(`# ${r.n} claims in ${r.seconds.toFixed(1)} s (p50 ${r.p50ms.toFixed(0)} ms, p99 ${r.p99ms.toFixed(0)} ms): ok ${r.ok}, duplicates ${r.duplicates}, lost ${r.lost}`);
  assert.deepEqual(r.failed.slice(0, 3), []);
  assert.equal(r.ok, N);
  assert.equal(r.duplicates, 0);
  assert.equal(r.lost, 0);
}

describe('10,000 concurrent allocations, one pool', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiver-ipam-conc-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SQLite: distinct, none lost, then full', async () => {
    const s = SqliteStore.open(join(dir, 'k.db'));
    try {
      check(await concurrentClaims([s, s], 'load', N));
      const full = await concurrentClaims([s, s], 'exact', N, { exact: true });
      check(full);
      assert.equal(full.overflowRefused, true, 'the pool is full: one more claim is refused');
    } finally {
      await s.close();
    }
  });

  it('etcd (3 members), two servers\' allocators: distinct, none lost, then full', async () => {
    const cluster = await EtcdCluster.start({ members: 3 });
    const stores = [await EtcdStore.open({ endpoints: cluster.endpoints }), await EtcdStore.open({ endpoints: [...cluster.endpoints].reverse() })];
    try {
      check(await concurrentClaims(stores, 'load', N, { maxInFlight: 64 }));
    } finally {
      for (const s of stores) await s.close();
      await cluster.stop();
    }
  });
});

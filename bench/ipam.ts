/**
 * bench:ipam — allocation under contention and leak reclaim, on SQLite and on a 3-member
 * etcd. For each backend: N concurrent claims (default 10,000) against one /16 pool through two allocators (two store clients on etcd, as two servers), with
 * allocations/s, p50/p99 per claim as its caller sees it (queueing included), duplicates
 * and lost claims; the baseline is the bare compare-and-swap the claim is built on (N
 * create-only puts at the same concurrency), measured in the same run. Then the time to
 * reclaim 1,000 leaked addresses (owner gone, grace over, held by no node).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteStore } from '../src/store/sqlite.js';
import { EtcdStore } from '../src/store/etcd.js';
import type { Store } from '../src/store/store.js';
import { EtcdCluster } from '../test/harness/etcd-cluster.js';
import { concurrentClaims } from '../test/harness/ipam-load.js';
import { Ipam } from '../src/ipam/allocator.js';
import { createPool } from '../src/ipam/pools.js';
import { auditPools, freeLeaks, markReleased } from '../src/ipam/audit.js';
import { UnavailableError } from '../src/errors.js';

const N = Number(process.env.IPAM_BENCH_N ?? 10_000);
/** sqlite, etcd, or both (default). */
const ONLY = process.env.IPAM_BENCH_ONLY;
const LEAKS = 1_000;
const IN_FLIGHT = 64; // per allocator (the controller's default is 16)
const CONCURRENCY = 2 * IN_FLIGHT;

async function bareCas(stores: Store[], n: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let i = next++; i < n; i = next++) {
      for (let attempt = 0; ; attempt++) {
        try {
          // A timed-out create may have applied: the retry then just finds the key (as a claim re-reads).
          await stores[w % stores.length].txn({ compare: [{ key: `/bench/cas/${i}`, modRevision: 0 }], success: [{ type: 'put', key: `/bench/cas/${i}`, value: 'x' }] });
          break;
        } catch (err) {
          if (!(err instanceof UnavailableError) || attempt >= 10) throw err;
        }
      }
    }
  }));
  return n / ((performance.now() - t0) / 1000);
}

async function reclaim(store: Store): Promise<{ ms: number; freed: number }> {
  await createPool(store, { name: 'leaky', cidr: '10.200.0.0/16', scope: { service: 'gone' } });
  const ipam = new Ipam(store);
  await Promise.all(Array.from({ length: LEAKS }, (_, i) => ipam.ensure({ service: 'gone', ordinal: i, serviceUid: 'u', graceSeconds: 0 })));
  // No service "gone" exists: every owner is gone. Time the two passes the leader's reclaimer makes.
  const t0 = performance.now();
  await markReleased(store, (await auditPools(store, 'leaky')).toRelease);
  const freed = await freeLeaks(store, (await auditPools(store, 'leaky')).leaks);
  return { ms: performance.now() - t0, freed: freed.length };
}

async function run(name: string, stores: Store[]): Promise<void> {
  const baseline = await bareCas(stores, N);
  const r = await concurrentClaims(stores, 'bench', N, { maxInFlight: IN_FLIGHT });
  const rate = r.ok / r.seconds;
  console.log(`${name}: ${N} concurrent claims, one /16 pool: ${rate.toFixed(0)} allocations/s, p50 ${r.p50ms.toFixed(0)} ms, p99 ${r.p99ms.toFixed(0)} ms (queueing included)`);
  console.log(`${name}: baseline bare CAS (create-only put, ${CONCURRENCY} in flight): ${baseline.toFixed(0)}/s; allocation/baseline ratio ${(rate / baseline).toFixed(2)}`);
  console.log(`${name}: ok ${r.ok}, failed ${r.failed.length}, lost ${r.lost}`);
  console.log(`${name}: duplicates: ${r.duplicates}`);
  const rec = await reclaim(stores[0]);
  console.log(`${name}: reclaim ${LEAKS} leaked addresses: ${rec.ms.toFixed(0)} ms (${rec.freed} freed)`);
  if (r.duplicates !== 0 || r.lost !== 0 || r.failed.length !== 0 || rec.freed !== LEAKS) process.exitCode = 1;
}

const dir = await mkdtemp(join(tmpdir(), 'kiver-bench-ipam-'));
try {
  if (ONLY !== 'etcd') {
    const s = SqliteStore.open(join(dir, 'k.db'));
    await run('sqlite', [s, s]);
    await s.close();
  }
  if (ONLY === 'sqlite') process.exit();
  const cluster = await EtcdCluster.start({ members: 3 });
  const stores = [await EtcdStore.open({ endpoints: cluster.endpoints }), await EtcdStore.open({ endpoints: [...cluster.endpoints].reverse() })];
  try {
    await run('etcd (3 members, 2 clients)', stores);
  } finally {
    for (const st of stores) await st.close();
    await cluster.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

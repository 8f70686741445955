/**
 * bench:scheduler — the talk's burst: 3,000 replicas (1,000 services × 3) placed
 * onto 10,000 in-memory nodes through the real controller, scheduler and commit
 * path on the embedded SQLite store. Prints placements/s, p50/p99 per placement,
 * and the same run with an exhaustive scan (every node scored, as a scheduler
 * without sampling does) as the baseline measured here.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { openStore } from '../src/store/open.js';
import { EtcdCluster } from '../test/harness/etcd-cluster.js';
import type { Store, Op } from '../src/store/store.js';
import { StoreCache } from '../src/controllers/cache.js';
import { NodeIndex } from '../src/controllers/node-index.js';
import { ServiceController } from '../src/controllers/services.js';
import { EventRecorder } from '../src/controllers/events.js';
import { createLogger } from '../src/log.js';
import { K } from '../src/model/keys.js';
import type { Node } from '../src/model/node.js';
import type { Service } from '../src/model/service.js';

const NODES = Number(process.env.BENCH_NODES ?? 10_000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1_000);
const REPLICAS = 3;

async function seedNodes(store: Store): Promise<void> {
  const now = new Date().toISOString();
  // 50 nodes (100 ops) per txn: under etcd's default limit of 128 ops.
  for (let i = 0; i < NODES; i += 50) {
    const ops: Op[] = [];
    for (let j = i; j < Math.min(NODES, i + 50); j++) {
      const name = `node-${String(j).padStart(5, '0')}`;
      const node: Node = { name, address: '127.0.0.1', cpus: 32, memory: 128 * 2 ** 30, labels: {}, cordoned: false, lease: 0, registeredAt: now };
      ops.push({ type: 'put', key: K.node(name), value: JSON.stringify(node) }, { type: 'put', key: K.alive(name), value: '{}' });
    }
    await store.txn({ compare: [], success: ops });
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function run(label: string, limit: number, storeUrl?: string) {
  const dir = await mkdtemp(join(tmpdir(), 'kiver-bench-'));
  const store = await openStore(storeUrl ?? `sqlite:${join(dir, 'kiver.db')}`);
  await seedNodes(store);
  const log = createLogger('bench', 'silent');
  const cache = new StoreCache(store);
  await cache.start();
  const nodes = new NodeIndex(cache);
  const controller = new ServiceController(store, cache, nodes, new EventRecorder(store, log), log, limit);
  const perService: number[] = [];
  const perCommit: number[] = [];
  const reconcile = controller.reconcile.bind(controller);
  controller.reconcile = async (name: string) => {
    const t = process.hrtime.bigint();
    await reconcile(name);
    perService.push(Number(process.hrtime.bigint() - t) / 1e6);
  };
  const c = controller as unknown as { flush: () => Promise<void> };
  const flush = c.flush.bind(controller);
  c.flush = async () => {
    const t = process.hrtime.bigint();
    await flush();
    perCommit.push(Number(process.hrtime.bigint() - t) / 1e6);
  };
  controller.start();

  const t0 = performance.now();
  const now = new Date().toISOString();
  // Users' creates arrive concurrently (16 API clients), as in a real burst.
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    for (let i = next++; i < SERVICES; i = next++) {
      const name = `svc-${i}`;
      const svc: Service = {
        spec: { name, image: 'kiver/busybox', command: [], env: {}, secretEnv: {}, ports: [{ container: 8080 }], cpu: 1, cpuPolicy: 'shares', memory: 2 ** 30, replicas: REPLICAS, localData: false },
        uid: randomUUID(), generation: 1, createdAt: now, updatedAt: now,
      };
      await store.txn({ compare: [{ key: K.service(name), modRevision: 0 }], success: [{ type: 'put', key: K.service(name), value: JSON.stringify(svc) }] });
    }
  }));
  // Done when every replica key exists with a node.
  for (;;) {
    let placed = 0;
    for (const kv of cache.all(K.replicas)) if (JSON.parse(kv.value).node) placed++;
    if (placed >= SERVICES * REPLICAS) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const total = performance.now() - t0;
  await controller.stop();
  // Check: no node over-committed, replicas of one service on distinct nodes.
  const where = new Map<string, Set<string>>();
  for (const kv of cache.all(K.replicas)) {
    const r = JSON.parse(kv.value);
    if (!where.has(r.service)) where.set(r.service, new Set());
    where.get(r.service)!.add(r.node);
  }
  const spread = [...where.values()].every((s) => s.size === REPLICAS);
  await cache.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
  const perPlacement = perService.map((ms) => ms / REPLICAS);
  return {
    label, total, rate: (SERVICES * REPLICAS) / (total / 1000), p50: pct(perPlacement, 50), p99: pct(perPlacement, 99), spread,
    commits: perCommit.length, c50: pct(perCommit, 50), c99: pct(perCommit, 99),
  };
}

const kiver = await run('kiver (sampled, limit 32)', 32);
const exhaustive = await run('baseline: exhaustive scan', Number.MAX_SAFE_INTEGER);
let onEtcd: typeof kiver | undefined;
if (process.env.BENCH_ETCD !== '0') {
  const etcd = await EtcdCluster.start({ members: 3 });
  try {
    onEtcd = await run('kiver on etcd (3 members)', 32, `etcd://${etcd.endpoints.map((e) => e.replace('http://', '')).join(',')}`);
  } finally {
    await etcd.stop();
  }
}
const fmt = (r: typeof kiver) =>
  `${r.label.padEnd(28)} ${Math.round(r.rate).toString().padStart(7)} placements/s  burst ${(r.total / 1000).toFixed(2)} s  ` +
  `plan p50/p99 ${r.p50.toFixed(3)}/${r.p99.toFixed(3)} ms per placement  commit p50/p99 ${r.c50.toFixed(1)}/${r.c99.toFixed(1)} ms per plan (${r.commits} plans)  ` +
  `distinct nodes: ${r.spread ? 'yes' : 'NO'}`;
console.log(`bench:scheduler — ${SERVICES * REPLICAS} replicas (${SERVICES} services × ${REPLICAS}) onto ${NODES} nodes, embedded SQLite store (and etcd)`);
console.log(fmt(kiver));
console.log(fmt(exhaustive));
if (onEtcd) console.log(fmt(onEtcd));
console.log(`ratio kiver/baseline: ${(kiver.rate / exhaustive.rate).toFixed(1)}×`);
console.log('references: kube-scheduler CI thresholds 680–810 pods/s; Nomad C1M 3,750 containers/s on 5 servers; target ≥ 5,000/s, burst ≤ 1 s');

/**
 * bench:burst — 3,000 replicas (1,000 services × 3) submitted at once, in one
 * `POST /v1/services/apply`, onto BENCH_BURST_NODES simulated nodes (default 100 and
 * 10,000), on SQLite and on a 3-member etcd: time from submit to all placed and to all
 * reported running, replicas/s end to end, the server's worst event-loop delay.
 * Baseline in the same run: the same burst as 1,000 single creates (16 in flight).
 * Target (issue 15): ≤ 5 s to all running on 10,000 nodes.
 *
 * BENCH_BURST_NODES (100,10000), BENCH_BURST_REPLICAS (3000), BENCH_BACKENDS (sqlite,etcd), BENCH_BURST_BASELINE (1),
 * BENCH_PROFILE=DIR (server under --cpu-prof).
 */
import { load, ServerWatch, SimProcess, startControlPlane, type Backend } from './fleet-harness.js';
import { submitServices } from './submit.js';
import type { ApiClient } from '../src/client/api-client.js';

const NODE_COUNTS = (process.env.BENCH_BURST_NODES ?? '100,10000').split(',').map(Number);
const REPLICAS = Number(process.env.BENCH_BURST_REPLICAS ?? 3000);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'sqlite,etcd').split(',') as Backend[];
const SERVICES = Math.ceil(REPLICAS / 3);
/** BENCH_BURST_BASELINE=0 skips the 1,000-creates baseline (it takes minutes on a loaded machine). */
const BASELINE = process.env.BENCH_BURST_BASELINE !== '0';

interface Burst { submitS: number; placedS: number; runningS: number; lagMaxMs: number; conflicts: number }

async function counter(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
const placements = (url: string) => counter(url, 'kiver_scheduler_placements_total');

async function burst(admin: ApiClient, url: string, sim: SimProcess, prefix: string, bulk: boolean): Promise<Burst> {
  const watch = new ServerWatch(url, 5000);
  await watch.start();
  const placed0 = await placements(url);
  const running0 = sim.stats?.running ?? 0;
  const t0 = performance.now();
  if (bulk) {
    const services = Array.from({ length: SERVICES }, (_, i) => ({ name: `${prefix}-${i}`, image: 'nginx', replicas: 3, cpu: 0.1, memory: 64 * 2 ** 20 }));
    await admin.post('/v1/services/apply', { services });
  } else {
    await submitServices(admin, prefix, SERVICES, 3);
  }
  const submitS = (performance.now() - t0) / 1000;
  let placedS = NaN;
  const deadline = t0 + 600_000;
  for (;;) {
    if (Number.isNaN(placedS) && (await placements(url)) - placed0 >= SERVICES * 3) placedS = (performance.now() - t0) / 1000;
    if ((sim.stats?.running ?? 0) - running0 >= SERVICES * 3) break;
    if (performance.now() > deadline) throw new Error(`burst not running after 600 s: ${JSON.stringify(sim.stats)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const runningS = (performance.now() - t0) / 1000;
  await watch.stop();
  return { submitS, placedS, runningS, lagMaxMs: watch.maxLagMs, conflicts: await counter(url, 'kiver_scheduler_commit_conflicts_total') };
}

console.log(`bench:burst — ${SERVICES * 3} replicas (${SERVICES} services × 3) at once; load average ${load()}`);
for (const backend of BACKENDS) {
  for (const nodes of NODE_COUNTS) {
    const cp = await startControlPlane(backend);
    const sim = new SimProcess(cp.server.url, cp.joinToken, nodes, ['--heartbeat', '10', '--wait', '30']);
    try {
      await sim.start();
      const bulk = await burst(cp.admin, cp.server.url, sim, 'bulk', true);
      if (!BASELINE) {
        console.log(`${backend.padEnd(6)} ${String(nodes).padStart(5)} nodes  apply (1 request): ${line(bulk)}; load average ${load()}`);
        continue;
      }
      const base = await burst(cp.admin, cp.server.url, sim, 'one', false);
      function line(b: Burst) {
        return `submitted ${b.submitS.toFixed(2)} s, all placed ${b.placedS.toFixed(2)} s, all running ${b.runningS.toFixed(2)} s ` +
        `(${Math.round((SERVICES * 3) / b.runningS)} replicas/s end to end), event-loop delay max ${b.lagMaxMs.toFixed(0)} ms, plan conflicts so far ${b.conflicts}`;
      }
      console.log(`${backend.padEnd(6)} ${String(nodes).padStart(5)} nodes  apply (1 request): ${line(bulk)}`);
      console.log(`${''.padEnd(6)} ${''.padStart(5)}        baseline, ${SERVICES} creates: ${line(base)}; ratio ${(base.runningS / bulk.runningS).toFixed(2)}×` +
        (nodes >= 10_000 ? `; target ≤ 5 s to all running: ${bulk.runningS <= 5 ? 'ok' : 'MISSED'}` : '') + `; load average ${load()}`);
    } finally {
      await sim.stop();
      await cp.stop();
    }
  }
}
process.exit(0);

/**
 * bench:fleet — one `kiver server` under a fleet of simulated nodes (`kiver sim`: heartbeat
 * every 10 s, a long-poll on assignments each) holding BENCH_REPLICAS running replicas, on
 * SQLite and on a 3-member etcd. For BENCH_SECONDS of steady state it reads: server CPU
 * (share of one core), RSS, API p99 of a single-object GET and of a POST (service create)
 * issued at a steady pace, event-loop delay (the server's monitorEventLoopDelay), leader
 * changes, failed heartbeats. Targets from issue 15 are printed beside each figure.
 *
 * BENCH_NODES (10000), BENCH_SECONDS (60; the run is 300), BENCH_REPLICAS (3000),
 * BENCH_BACKENDS (sqlite,etcd), BENCH_PROFILE=DIR (server under --cpu-prof).
 */
import { cpuMeter, load, p, rssMiB, ServerWatch, SimProcess, startControlPlane, until, type Backend } from './fleet-harness.js';

const NODES = Number(process.env.BENCH_NODES ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 3000);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'sqlite,etcd').split(',') as Backend[];

interface Result {
  backend: Backend;
  cpu: number;
  rss: number;
  getP99: number;
  postP99: number;
  lagMax: number;
  lagP99: number;
  leaderChanges: number;
  hbFailed: number;
  hbOk: number;
  simCpu: number;
  load: string;
}

async function run(backend: Backend): Promise<Result> {
  const cp = await startControlPlane(backend);
  const sim = new SimProcess(cp.server.url, cp.joinToken, NODES, ['--heartbeat', '10', '--wait', '30']);
  try {
    const t0 = Date.now();
    await sim.start();
    console.log(`  [${backend}] ${NODES} nodes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await cp.admin.post('/v1/services', { name: 'probe', image: 'nginx', replicas: 0 });
    if (REPLICAS > 0) {
      const services = Array.from({ length: Math.ceil(REPLICAS / 3) }, (_, i) => ({ name: `fleet-${i}`, image: 'nginx', replicas: 3, cpu: 0.1, memory: 64 * 2 ** 20 }));
      await cp.admin.post('/v1/services/apply', { services });
      await until(`${REPLICAS} replicas running`, async () => (sim.stats?.running ?? 0) >= REPLICAS, 600_000, 500);
      console.log(`  [${backend}] ${REPLICAS} replicas running after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const watch = new ServerWatch(cp.server.url);
    await watch.start();
    const hb0 = { ok: sim.stats!.heartbeats, failed: sim.stats!.heartbeatFailures };
    const transitions0 = watch.transitions;
    const cpu = await cpuMeter(cp.server.proc!.pid!);
    const simCpu = await cpuMeter(sim.pid);
    const gets: number[] = [];
    const posts: number[] = [];
    const end = Date.now() + SECONDS * 1000;
    let i = 0;
    const timed = async (into: number[], fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      into.push(performance.now() - t);
    };
    while (Date.now() < end) {
      const tick = Date.now();
      await Promise.all([
        timed(gets, () => cp.admin.get('/v1/services/probe')),
        ...(i % 5 === 0 ? [timed(posts, () => cp.admin.post('/v1/services', { name: `p${i}`, image: 'nginx', replicas: 0 }))] : []),
      ]);
      i++;
      await new Promise((r) => setTimeout(r, Math.max(0, 200 - (Date.now() - tick))));
    }
    const r: Result = {
      backend,
      cpu: await cpu(), simCpu: await simCpu(), rss: await rssMiB(cp.server.proc!.pid!),
      getP99: p(gets, 0.99), postP99: p(posts, 0.99), lagMax: 0, lagP99: 0, leaderChanges: 0,
      hbOk: sim.stats!.heartbeats - hb0.ok, hbFailed: sim.stats!.heartbeatFailures - hb0.failed, load: load(),
    };
    await watch.stop();
    Object.assign(r, { lagMax: watch.maxLagMs, lagP99: watch.p99LagMs, leaderChanges: watch.transitions - transitions0 });
    return r;
  } finally {
    await sim.stop();
    await cp.stop();
  }
}

console.log(`bench:fleet — ${NODES} simulated nodes (heartbeat 10 s, long-poll 30 s), ${REPLICAS} replicas, ${SECONDS} s steady state; load average ${load()}`);
for (const b of BACKENDS) {
  const r = await run(b);
  const ok = (v: boolean) => (v ? 'ok' : 'MISSED');
  console.log(`${b.padEnd(6)} server CPU ${(100 * r.cpu).toFixed(1)} % of a core (target ≤ 30 %: ${ok(r.cpu <= 0.3)}), RSS ${r.rss.toFixed(0)} MiB, ` +
    `API p99 GET ${r.getP99.toFixed(1)} ms / POST ${r.postP99.toFixed(1)} ms (target ≤ 100 ms: ${ok(Math.max(r.getP99, r.postP99) <= 100)}), ` +
    `event-loop delay p99 ${r.lagP99.toFixed(1)} ms max ${r.lagMax.toFixed(1)} ms (target max ≤ 50 ms: ${ok(r.lagMax <= 50)}), ` +
    `leader changes ${r.leaderChanges} (target 0: ${ok(r.leaderChanges === 0)}), heartbeats ${r.hbOk} ok / ${r.hbFailed} failed (target 0: ${ok(r.hbFailed === 0)}); ` +
    `kiver sim CPU ${(100 * r.simCpu).toFixed(1)} % of a core (target ≤ 100 %); load average ${r.load}`);
}
process.exit(0);

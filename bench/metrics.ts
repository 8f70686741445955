/**
 * `npm run bench:metrics [-- --containers N --scrapes S]` — what container metrics cost the agent.
 *
 * Starts N busybox containers (default 100, labelled kiver.bench=metrics) on the local
 * dockerd, then measures, in this process, the CPU time (user + system) and wall time of
 * one scrape of all N containers:
 *   - Kiver: the cAdvisor-named metrics read from cgroup files (registry.metrics()),
 *   - baseline: the Docker stats API, one one-shot stats call per container (what an
 *     agent reading `docker stats` would do), all N in parallel.
 * Prints both and the ratio. dockerd's own CPU for the baseline is not counted here
 * (it is extra cost on top). Removes its containers at the end.
 */
import Docker from 'dockerode';
import { Registry } from 'prom-client';
import { registerContainerMetrics, type TrackedContainer } from '../src/agent/container-metrics.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('containers', 100);
const SCRAPES = arg('scrapes', 20);
const LABEL = 'kiver.bench=metrics';

async function cleanup(docker: Docker): Promise<void> {
  const cs = await docker.listContainers({ all: true, filters: { label: [LABEL] } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
}

function cpuMs(f: () => Promise<unknown>): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return f().then(() => {
    const c = process.cpuUsage(c0);
    return { cpu: (c.user + c.system) / 1000, wall: performance.now() - t0 };
  });
}

async function main(): Promise<void> {
  const docker = new Docker();
  await cleanup(docker);
  try {
    process.stdout.write(`starting ${N} containers...\n`);
    const tracked: TrackedContainer[] = [];
    for (let i = 0; i < N; i += 10) {
      const batch = await Promise.all(Array.from({ length: Math.min(10, N - i) }, async (_, j) => {
        const c = await docker.createContainer({
          Image: 'kiver/busybox:latest', Cmd: ['sleep', '100000'], name: `kiver-bench-metrics-${i + j}`,
          Labels: { 'kiver.bench': 'metrics' }, HostConfig: { Memory: 16 * 2 ** 20 },
        });
        await c.start();
        return c.inspect();
      }));
      for (const x of batch) {
        tracked.push({ id: x.Id, name: x.Name.slice(1), image: x.Config.Image, service: 'bench', replica: `bench/${tracked.length}`, node: 'bench', pid: x.State.Pid, createdSeconds: Date.parse(x.Created) / 1000 });
      }
    }
    const registry = new Registry();
    const metrics = registerContainerMetrics(registry);
    metrics.addSource({ containers: () => tracked });
    const first = await registry.metrics();
    const samples = first.split('\n').filter((l) => l.startsWith('container_cpu_usage_seconds_total{')).length;
    if (samples !== N) throw new Error(`expected ${N} cpu samples, got ${samples}`);

    let kiver = { cpu: 0, wall: 0 };
    for (let s = 0; s < SCRAPES; s++) {
      const r = await cpuMs(() => registry.metrics());
      kiver = { cpu: kiver.cpu + r.cpu, wall: kiver.wall + r.wall };
    }
    let stats = { cpu: 0, wall: 0 };
    const statScrapes = Math.max(1, Math.min(SCRAPES, 3));
    for (let s = 0; s < statScrapes; s++) {
      const r = await cpuMs(() => Promise.all(tracked.map((c) => docker.getContainer(c.id).stats({ stream: false, 'one-shot': true } as { stream: false }))));
      stats = { cpu: stats.cpu + r.cpu, wall: stats.wall + r.wall };
    }
    const k = { cpu: kiver.cpu / SCRAPES, wall: kiver.wall / SCRAPES };
    const b = { cpu: stats.cpu / statScrapes, wall: stats.wall / statScrapes };
    process.stdout.write([
      `containers: ${N}, scrapes: ${SCRAPES} (baseline: ${statScrapes})`,
      `kiver (cgroup files):      cpu ${k.cpu.toFixed(1)} ms/scrape, wall ${k.wall.toFixed(1)} ms/scrape, ${(k.cpu / N * 1000).toFixed(0)} µs cpu per container`,
      `baseline (Docker stats):   cpu ${b.cpu.toFixed(1)} ms/scrape, wall ${b.wall.toFixed(1)} ms/scrape (dockerd's own CPU not counted)`,
      `ratio baseline/kiver:      cpu ${(b.cpu / k.cpu).toFixed(1)}x, wall ${(b.wall / k.wall).toFixed(1)}x`,
      `agent CPU at a 15 s scrape interval: ${(k.cpu / 15_000 * 100).toFixed(3)} % of one core`,
      '',
    ].join('\n'));
  } finally {
    await cleanup(docker);
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});

/**
 * bench:failover-db — managed MySQL (MariaDB) and Redis on three test hosts under a
 * steady write load through the write endpoint:
 *
 *  - container-kill: kill -9 of the primary's container (median of BENCH_TRIALS, default 5);
 *  - host-kill: the primary's whole test host powered off (median of BENCH_HOST_TRIALS, default 3);
 *
 * time from the kill to the first acknowledged write after the writer saw the failure,
 * and acknowledged writes missing on the new primary afterwards (MySQL: rows whose
 * COMMIT returned; Redis: INCRs confirmed by WAIT 1). Baseline measured in the same run:
 * restart in place — kill to the killed server answering again (Docker/agent restarting it),
 * what a client would wait without a failover.
 */
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { CatalogCluster, inSync } from '../test/harness/catalog-cluster.js';
import { until } from '../test/harness/kiver.js';
import { AckedWriter, mysqlWriter, redisWriter, type WriterBackend } from '../test/harness/acked-writer.js';
import type { ServiceRoles } from '../src/model/service-roles.js';
import { managedType } from '../src/services/catalog.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
const HOST_TRIALS = Number(process.env.BENCH_HOST_TRIALS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s1 = (ms: number) => (ms / 1000).toFixed(1);


interface Trial {
  outageMs: number;
  lost: number;
  restartMs?: number;
}

async function benchType(type: 'mysql' | 'redis'): Promise<void> {
  const t = managedType(type)!;
  const c = await CatalogCluster.start({ images: [t.image], graceSeconds: 5 });
  try {
    const name = `b${type}`;
    await c.admin.post('/v1/services', { name, type });
    const get = () => c.service(name);
    const ready = (pred: (r: ServiceRoles) => boolean, what: string) => c.whenReady(name, pred, what, 180_000);
    await ready(inSync(2), 'primary + 2 replicas in sync');
    const creds = await c.admin.get<{ password: string; all: Record<string, string> }>(`/v1/services/${name}/credentials`);
    const hookCtx = { credentials: creds.all, params: {}, syncReplicas: 1 };

    const trial = async (i: number, kind: 'container' | 'host'): Promise<Trial> => {
      const ep = await c.endpoints(name);
      const before = await get();
      const old = before.roles!.primary!;
      const oldAddr = ep.replicas.find((r) => r.ordinal === old)!;
      const tag = `${kind}${i}`;
      let backend: WriterBackend & { values?: number[] };
      backend = type === 'mysql'
        ? mysqlWriter({ host: ep.write.host, port: ep.write.port, user: 'app', password: creds.password, database: 'app' }, `t_${tag}`)
        : redisWriter({ host: ep.write.host, port: ep.write.port, password: creds.password }, `c_${tag}`);
      const w = new AckedWriter(backend);
      await w.start();
      await until('steady writes', async () => w.acked.length >= 30, 60_000, 20);
      const victim = before.replicas.find((r) => r.ordinal === old)!;
      const host = c.host(victim.node);
      const t0 = Date.now();
      let restartMs: number | undefined;
      const restartWatch = (async () => {
        if (kind !== 'container') return;
        for (;;) {
          if (Date.now() - t0 > 120_000) return;
          const p = await t.hooks.probe({ host: oldAddr.host, port: oldAddr.port }, hookCtx);
          if (p.up && Date.now() - t0 > 200) return void (restartMs = Date.now() - t0);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      if (kind === 'container') await host.docker.getContainer(victim.containerId!).kill({ signal: 'SIGKILL' });
      else await host.powerOff();
      const after = await ready((r) => r.primary !== undefined && r.primary !== old, 'a new primary');
      const n = w.acked.length;
      await until('writes after the failover', async () => w.acked.length >= n + 20, 60_000, 20);
      await w.stop();
      const outageMs = w.outageAfter(t0) ?? 0;
      const p = ep.replicas.find((r) => r.ordinal === after.roles!.primary)!;
      let lost: number;
      if (type === 'mysql') {
        const db = await mysql.createConnection({ host: p.host, port: p.port, user: 'app', password: creds.password, database: 'app' });
        const [rows] = await db.query<mysql.RowDataPacket[]>(`SELECT id FROM ${db.escapeId(`t_${tag}`)}`);
        await db.end();
        const have = new Set(rows.map((r) => Number(r.id)));
        lost = w.acked.filter((id) => !have.has(id)).length;
      } else {
        const r = new Redis({ host: p.host, port: p.port, password: creds.password, lazyConnect: true, retryStrategy: () => null });
        await r.connect();
        const v = Number(await r.get(`c_${tag}`));
        r.disconnect();
        lost = backend.values!.filter((x) => x > v).length;
      }
      await restartWatch;
      if (kind === 'host') await host.start();
      await ready(inSync(2), 'the old primary rejoined');
      process.stderr.write(`  ${type} ${kind}-kill #${i + 1}: writable after ${s1(outageMs)} s, lost ${lost}${restartMs ? `, restart in place ${s1(restartMs)} s` : ''}\n`);
      return { outageMs, lost, restartMs };
    };

    const ck: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) ck.push(await trial(i, 'container'));
    const hk: Trial[] = [];
    for (let i = 0; i < HOST_TRIALS; i++) hk.push(await trial(i, 'host'));
    const base = median(ck.map((x) => x.restartMs ?? 0));
    const ckMed = median(ck.map((x) => x.outageMs));
    process.stdout.write(`${type} container-kill writable after ${s1(ckMed)} s, lost ${ck.reduce((a, x) => a + x.lost, 0)} acknowledged writes` +
      ` (median of ${ck.length}; restart in place ${s1(base)} s, ratio ${(ckMed / base).toFixed(2)})\n`);
    process.stdout.write(`${type} host-kill writable after ${s1(median(hk.map((x) => x.outageMs)))} s, lost ${hk.reduce((a, x) => a + x.lost, 0)} acknowledged writes (median of ${hk.length})\n`);
  } finally {
    await c.cleanup();
  }
}

const only = process.argv[2];
for (const type of ['mysql', 'redis'] as const) if (!only || only === type) await benchType(type);
process.exit(0);

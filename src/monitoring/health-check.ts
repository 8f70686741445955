/**
 * Gathers the health inputs on a server: the store (every etcd member), the
 * leader, every node's heartbeat and its agent's reports (Docker, log
 * partition), and the monitoring pair's own health endpoints.
 */
import type { Store } from '../store/store.js';
import type { StoreCache } from '../controllers/cache.js';
import { K } from '../model/keys.js';
import { evaluateHealth, type HealthInputs, type HealthReport } from './health.js';
import { nodeFacts } from './cluster-state.js';
import type { MonitoringConfig } from '../model/monitoring.js';

const PROBE_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms)))])
    .finally(() => clearTimeout(t));
}

/** Prometheus and Alertmanager both answer GET /-/healthy with 200. */
async function probe(kind: string, url: string): Promise<{ kind: string; url: string; ok: boolean; error?: string }> {
  try {
    const res = await fetch(new URL('/-/healthy', url), { signal: AbortSignal.timeout(PROBE_MS) });
    return res.ok ? { kind, url, ok: true } : { kind, url, ok: false, error: `HTTP ${res.status}` };
  } catch (err) {
    return { kind, url, ok: false, error: (err as Error).message };
  }
}

export async function checkHealth(store: Store, cache: StoreCache, diskThreshold: number): Promise<HealthReport> {
  const inputs: HealthInputs = { store: { ok: true }, nodes: [], diskThreshold };
  let monitoring: MonitoringConfig | undefined;
  try {
    const [leader, mon] = await withTimeout(Promise.all([store.get(K.leader), store.get(K.monitoring)]), PROBE_MS * 2, 'store');
    if (leader) inputs.leader = JSON.parse(leader.value) as { url: string };
    if (mon) monitoring = JSON.parse(mon.value) as MonitoringConfig;
  } catch (err) {
    inputs.store = { ok: false, error: (err as Error).message };
  }
  if (store.members) inputs.store.members = await store.members().catch((err) => [{ endpoint: 'all', ok: false, error: (err as Error).message }]);
  // Without the store the cache is stale: node facts would report a past state as current.
  if (inputs.store.ok) {
    inputs.nodes = nodeFacts(cache).map((f) => ({
      name: f.node.name, ready: f.ready, ...(f.health ? { docker: f.health.docker, logDisk: f.health.logDisk } : {}),
    }));
  }
  if (monitoring) {
    inputs.monitoring = await Promise.all([
      ...monitoring.prometheus.map((u) => probe('Prometheus', u)),
      ...monitoring.alertmanager.map((u) => probe('Alertmanager', u)),
    ]);
  }
  return evaluateHealth(inputs);
}

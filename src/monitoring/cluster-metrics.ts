/**
 * Cluster state as metrics, read from a server's cache at scrape time: node
 * readiness, allocated vs capacity per node and for the cluster (CPU, memory,
 * cpuset cores), what agents report (Docker, log partition), replicas by state,
 * and the last health code. Every server exports them (aggregate with max by node).
 */
import { Gauge } from 'prom-client';
import { registry } from '../metrics.js';
import type { StoreCache } from '../controllers/cache.js';
import { K } from '../model/keys.js';
import type { Replica, ReplicaStatus } from '../model/replica.js';
import type { Service } from '../model/service.js';
import { replicaView } from '../api/views.js';
import { nodeFacts } from './cluster-state.js';
import type { HealthReport } from './health.js';

export interface ClusterSource {
  cache: StoreCache;
  health(): HealthReport | undefined;
}

const sources = new Set<ClusterSource>();
/** The newest source (one server per process, except in tests). */
const current = (): ClusterSource | undefined => [...sources].pop();

export const clusterMetrics = {
  add: (s: ClusterSource) => sources.add(s),
  remove: (s: ClusterSource) => sources.delete(s),
};

const g = (name: string, help: string, labelNames: string[] = [], collect?: () => void) =>
  new Gauge({ name, help, labelNames, registers: [registry], collect });
const m = {
  // Registered first among these (registry.metrics() collects in order, synchronously), so this
  // one pass fills them all before the others are read.
  ready: g('kiver_node_ready', '1 while the node heartbeats (its lease is live), else 0', ['node'], () => collect()),
  cpuCap: g('kiver_node_cpu_capacity_cores', 'Logical CPUs of the node', ['node']),
  cpuAlloc: g('kiver_node_cpu_allocated_cores', 'CPU allocated to replicas on the node', ['node']),
  memCap: g('kiver_node_memory_capacity_bytes', 'Memory of the node', ['node']),
  memAlloc: g('kiver_node_memory_allocated_bytes', 'Memory allocated to replicas on the node', ['node']),
  cpusetAlloc: g('kiver_node_cpuset_allocated_cores', 'Cores given exclusively to cpuset replicas on the node', ['node']),
  dockerUp: g('kiver_node_docker_up', "1 while the node's agent reports its Docker daemon answering", ['node']),
  diskSize: g('kiver_node_log_disk_size_bytes', "Size of the node's log partition (the agent's --log-root)", ['node', 'path']),
  diskFree: g('kiver_node_log_disk_free_bytes', "Free bytes on the node's log partition", ['node', 'path']),
  clusterCpuCap: g('kiver_cluster_cpu_capacity_cores', 'Logical CPUs of all ready nodes'),
  clusterCpuAlloc: g('kiver_cluster_cpu_allocated_cores', 'CPU allocated to replicas on all nodes'),
  clusterMemCap: g('kiver_cluster_memory_capacity_bytes', 'Memory of all ready nodes'),
  clusterMemAlloc: g('kiver_cluster_memory_allocated_bytes', 'Memory allocated to replicas on all nodes'),
  clusterCpusetAlloc: g('kiver_cluster_cpuset_allocated_cores', 'Cores given exclusively to cpuset replicas on all nodes'),
  replicas: g('kiver_replicas', 'Replicas by service and state (running, crashloop, pending, unknown, ...)', ['service', 'state']),
  healthCode: g('kiver_health_code', 'Cluster health code of the last check (0 healthy; see the README table)'),
  healthProblems: g('kiver_health_problems', 'Problems found by the last health check, by check', ['check']),
};

function collect(): void {
  for (const x of Object.values(m)) x.reset();
  const src = current();
  if (!src) return;
  let cpuCap = 0, cpuAlloc = 0, memCap = 0, memAlloc = 0, cpuset = 0;
  for (const f of nodeFacts(src.cache)) {
    const node = f.node.name;
    m.ready.set({ node }, f.ready ? 1 : 0);
    m.cpuCap.set({ node }, f.node.cpus);
    m.cpuAlloc.set({ node }, f.alloc.cpuMilli / 1000);
    m.memCap.set({ node }, f.node.memory);
    m.memAlloc.set({ node }, f.alloc.memory);
    m.cpusetAlloc.set({ node }, f.alloc.exclusiveCores.length);
    if (f.ready) {
      cpuCap += f.node.cpus;
      memCap += f.node.memory;
    }
    cpuAlloc += f.alloc.cpuMilli / 1000;
    memAlloc += f.alloc.memory;
    cpuset += f.alloc.exclusiveCores.length;
    if (f.health && f.ready) {
      m.dockerUp.set({ node }, f.health.docker.up ? 1 : 0);
      const d = f.health.logDisk;
      if (d) {
        m.diskSize.set({ node, path: d.path }, d.sizeBytes);
        m.diskFree.set({ node, path: d.path }, d.freeBytes);
      }
    }
  }
  m.clusterCpuCap.set(cpuCap);
  m.clusterCpuAlloc.set(cpuAlloc);
  m.clusterMemCap.set(memCap);
  m.clusterMemAlloc.set(memAlloc);
  m.clusterCpusetAlloc.set(cpuset);

  const ready = new Set([...src.cache.all(K.alives)].map((kv) => kv.key.slice(K.alives.length)));
  const local = new Set([...src.cache.all(K.services)].map((kv) => JSON.parse(kv.value) as Service).filter((s) => s.spec.localData).map((s) => s.spec.name));
  const counts = new Map<string, number>();
  for (const kv of src.cache.all(K.replicas)) {
    const r = JSON.parse(kv.value) as Replica;
    const v = replicaView(r, src.cache.get<ReplicaStatus>(K.status(r.service, r.ordinal)), r.node === '' || ready.has(r.node), local.has(r.service));
    const k = `${r.service}\u0000${v.state}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  for (const [k, n] of counts) {
    const [service, state] = k.split('\u0000');
    m.replicas.set({ service, state }, n);
  }
  const h = src.health();
  if (h) {
    m.healthCode.set(h.code);
    for (const check of ['monitoring', 'network', 'store', 'node', 'docker', 'disk'] as const) {
      m.healthProblems.set({ check }, h.problems.filter((p) => p.check === check).length);
    }
  }
}

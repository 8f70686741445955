/**
 * Container metrics under cAdvisor's names, labels and meanings, read from the
 * containers' cgroup files (v2, or v1 where the hierarchy is v1) and
 * /proc/<pid>/net/dev — not from the Docker stats API, which costs dockerd a
 * stats stream per container. Existing cAdvisor dashboards and queries work
 * unchanged; Kiver adds the labels `service`, `replica` and `node`.
 *
 * The agent tells the collector which containers it runs (after each reconcile,
 * from what it already inspected); a scrape then costs a few small file reads
 * per container and no call to dockerd.
 */
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { registry as kiverRegistry } from '../metrics.js';

export interface TrackedContainer {
  id: string;
  /** Container name without the leading slash (cAdvisor's `name`). */
  name: string;
  image: string;
  service: string;
  replica: string;
  node: string;
  /** Host pid of the container's init process; 0 when it is not running. */
  pid: number;
  /** Docker's creation time, seconds since the epoch (cAdvisor's container_start_time_seconds). */
  createdSeconds: number;
}

/** Where one container's cgroup lives. */
interface CgroupPaths {
  /** cAdvisor's `id` label: the cgroup path, e.g. /docker/<id>. */
  id: string;
  v2?: string;
  v1: Map<string, string>;
}

export interface ContainerSample {
  cpuSeconds: number;
  memoryUsage: number;
  workingSet: number;
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  memoryLimit?: number;
  fsRead: Map<string, number>;
  fsWrite: Map<string, number>;
  netRx: Map<string, number>;
  netTx: Map<string, number>;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function num(path: string): number | undefined {
  const t = read(path)?.trim();
  if (t === undefined || t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (memory.stat, cpu.stat) → map. */
function keyed(text: string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) m.set(k, Number(v));
  }
  return m;
}

const v2Root = existsSync(`${CGROUP_ROOT}/cgroup.controllers`) ? CGROUP_ROOT : `${CGROUP_ROOT}/unified`;

/** Parses /proc/<pid>/cgroup. v1 lines name their controllers; the v2 line is "0::/path". */
export function parseProcCgroup(text: string): CgroupPaths | undefined {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[2] === '') v2 = m[3];
    else for (const c of m[2].split(',')) v1.set(c.replace(/^name=/, ''), m[3]);
  }
  const id = v1.get('cpuacct') ?? v1.get('cpu') ?? v2;
  if (id === undefined) return undefined;
  // A v1 controller line wins: on a hybrid host the unified hierarchy holds no controllers.
  return { id, v1, v2: v1.has('cpuacct') || v1.has('memory') ? undefined : v2 };
}

/** The directory of a v1 controller (mounted alone or combined, e.g. cpu,cpuacct). */
const v1Mounts = new Map<string, string>();
function v1Dir(controller: string, path: string): string {
  let mount = v1Mounts.get(controller);
  if (mount === undefined) {
    mount = `${CGROUP_ROOT}/${controller}`;
    if (!existsSync(mount)) {
      const combined = (() => { try { return readdirSync(CGROUP_ROOT); } catch { return []; } })()
        .find((d) => d.split(',').includes(controller));
      if (combined) mount = `${CGROUP_ROOT}/${combined}`;
    }
    v1Mounts.set(controller, mount);
  }
  return `${mount}${path}`;
}

/** cgroup v2 cpu.weight → cpu.shares, the inverse of runc's shares→weight conversion. */
export function weightToShares(weight: number): number {
  return Math.round(2 + ((weight - 1) * 262142) / 9999);
}

/** /dev names of block devices by "major:minor", as cAdvisor labels them. */
const deviceNames = new Map<string, string>();
function deviceName(majMin: string): string {
  let n = deviceNames.get(majMin);
  if (n === undefined) {
    const dev = /DEVNAME=(\S+)/.exec(read(`/sys/dev/block/${majMin}/uevent`) ?? '')?.[1];
    n = dev ? `/dev/${dev}` : majMin;
    deviceNames.set(majMin, n);
  }
  return n;
}

function addTo(m: Map<string, number>, k: string, v: number): void {
  if (Number.isFinite(v)) m.set(k, (m.get(k) ?? 0) + v);
}

/** Reads one container's cgroup (and network namespace) counters. */
export function sampleCgroup(p: CgroupPaths, pid: number): ContainerSample | undefined {
  const s: ContainerSample = { cpuSeconds: 0, memoryUsage: 0, workingSet: 0, fsRead: new Map(), fsWrite: new Map(), netRx: new Map(), netTx: new Map() };
  if (p.v2 !== undefined) {
    const dir = `${v2Root}${p.v2}`;
    const cpu = keyed(read(`${dir}/cpu.stat`));
    if (!cpu.has('usage_usec')) return undefined; // the cgroup is gone
    s.cpuSeconds = cpu.get('usage_usec')! / 1e6;
    s.memoryUsage = num(`${dir}/memory.current`) ?? 0;
    s.workingSet = Math.max(0, s.memoryUsage - (keyed(read(`${dir}/memory.stat`)).get('inactive_file') ?? 0));
    const weight = num(`${dir}/cpu.weight`);
    if (weight !== undefined) s.cpuShares = weightToShares(weight);
    const [quota, period] = (read(`${dir}/cpu.max`) ?? '').trim().split(' ');
    if (period) s.cpuPeriod = Number(period);
    if (quota && quota !== 'max') s.cpuQuota = Number(quota);
    s.memoryLimit = num(`${dir}/memory.max`);
    for (const line of (read(`${dir}/io.stat`) ?? '').split('\n')) {
      const [dev, ...kv] = line.split(' ');
      if (!dev) continue;
      const f = new Map(kv.map((x) => x.split('=') as [string, string]));
      addTo(s.fsRead, deviceName(dev), Number(f.get('rbytes') ?? 0));
      addTo(s.fsWrite, deviceName(dev), Number(f.get('wbytes') ?? 0));
    }
  } else {
    const cpuacct = v1Dir('cpuacct', p.v1.get('cpuacct') ?? '');
    const usage = num(`${cpuacct}/cpuacct.usage`);
    if (usage === undefined) return undefined;
    s.cpuSeconds = usage / 1e9;
    const mem = v1Dir('memory', p.v1.get('memory') ?? '');
    s.memoryUsage = num(`${mem}/memory.usage_in_bytes`) ?? 0;
    s.workingSet = Math.max(0, s.memoryUsage - (keyed(read(`${mem}/memory.stat`)).get('total_inactive_file') ?? 0));
    const limit = num(`${mem}/memory.limit_in_bytes`);
    // v1 writes "unlimited" as a page-rounded 2^63; report it as no limit, like v2's "max".
    if (limit !== undefined && limit < 2 ** 62) s.memoryLimit = limit;
    const cpu = v1Dir('cpu', p.v1.get('cpu') ?? '');
    s.cpuShares = num(`${cpu}/cpu.shares`);
    s.cpuPeriod = num(`${cpu}/cpu.cfs_period_us`);
    const quota = num(`${cpu}/cpu.cfs_quota_us`);
    if (quota !== undefined && quota > 0) s.cpuQuota = quota;
    const blkio = v1Dir('blkio', p.v1.get('blkio') ?? '');
    const io = read(`${blkio}/blkio.throttle.io_service_bytes_recursive`) ?? read(`${blkio}/blkio.throttle.io_service_bytes`) ?? '';
    for (const line of io.split('\n')) {
      const [dev, op, v] = line.split(' ');
      if (op === 'Read') addTo(s.fsRead, deviceName(dev), Number(v));
      else if (op === 'Write') addTo(s.fsWrite, deviceName(dev), Number(v));
    }
  }
  if (pid > 0) {
    // /proc/<pid>/net/dev shows the container's network namespace; columns 1 and 9 are rx/tx bytes.
    for (const line of (read(`/proc/${pid}/net/dev`) ?? '').split('\n').slice(2)) {
      const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
      if (!m || m[1] === 'lo') continue;
      const cols = m[2].trim().split(/\s+/).map(Number);
      s.netRx.set(m[1], cols[0]);
      s.netTx.set(m[1], cols[8]);
    }
  }
  return s;
}

/** One source of containers: an agent (several in one process in tests). */
export interface ContainerSource {
  containers(): Iterable<TrackedContainer>;
}

const sources = new Set<ContainerSource>();
/** cgroup paths by container id and pid (a restarted container keeps its cgroup but gets a new pid). */
const pathCache = new Map<string, { pid: number; paths: CgroupPaths }>();

function pathsOf(c: TrackedContainer): CgroupPaths | undefined {
  const hit = pathCache.get(c.id);
  if (hit && (hit.pid === c.pid || c.pid === 0)) return hit.paths;
  if (c.pid <= 0) return undefined;
  const text = read(`/proc/${c.pid}/cgroup`);
  const paths = text ? parseProcCgroup(text) : undefined;
  if (paths) pathCache.set(c.id, { pid: c.pid, paths });
  return paths;
}

type Labels = Record<string, string>;

/** Registers the cAdvisor-named metrics on a registry; values are read at scrape time. */
export function registerContainerMetrics(registry: Registry): { addSource(s: ContainerSource): void; removeSource(s: ContainerSource): void } {
  const base = ['id', 'name', 'image', 'service', 'replica', 'node'];
  const counter = (name: string, help: string, extra: string[] = [], collect?: () => void) =>
    new Counter({ name, help, labelNames: [...base, ...extra], registers: [registry], collect });
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: base, registers: [registry] });
  const m = {
    // Registered first: registry.metrics() collects in registration order, so this one
    // samples every container once per scrape and the metrics after it read the result.
    cpu: counter('container_cpu_usage_seconds_total', 'Cumulative cpu time consumed in seconds.', ['cpu'], () => collectAll()),
    workingSet: gauge('container_memory_working_set_bytes', 'Current working set in bytes.'),
    usage: gauge('container_memory_usage_bytes', 'Current memory usage in bytes, including all memory regardless of when it was accessed'),
    rx: counter('container_network_receive_bytes_total', 'Cumulative count of bytes received', ['interface']),
    tx: counter('container_network_transmit_bytes_total', 'Cumulative count of bytes transmitted', ['interface']),
    fsReads: counter('container_fs_reads_bytes_total', 'Cumulative count of bytes read', ['device']),
    fsWrites: counter('container_fs_writes_bytes_total', 'Cumulative count of bytes written', ['device']),
    shares: gauge('container_spec_cpu_shares', 'CPU share of the container.'),
    quota: gauge('container_spec_cpu_quota', 'CPU quota of the container.'),
    period: gauge('container_spec_cpu_period', 'CPU period of the container.'),
    memLimit: gauge('container_spec_memory_limit_bytes', 'Memory limit for the container.'),
    start: gauge('container_start_time_seconds', 'Start time of the container since unix epoch in seconds.'),
  };
  function collectAll(): void {
    for (const x of Object.values(m)) x.reset();
    const live = new Set<string>();
    for (const src of sources) {
      for (const c of src.containers()) {
        const paths = pathsOf(c);
        if (!paths) continue;
        const s = sampleCgroup(paths, c.pid);
        if (!s) continue;
        live.add(c.id);
        const l: Labels = { id: paths.id, name: c.name, image: c.image, service: c.service, replica: c.replica, node: c.node };
        m.cpu.inc({ ...l, cpu: 'total' }, s.cpuSeconds);
        m.workingSet.set(l, s.workingSet);
        m.usage.set(l, s.memoryUsage);
        for (const [i, v] of s.netRx) m.rx.inc({ ...l, interface: i }, v);
        for (const [i, v] of s.netTx) m.tx.inc({ ...l, interface: i }, v);
        for (const [d, v] of s.fsRead) m.fsReads.inc({ ...l, device: d }, v);
        for (const [d, v] of s.fsWrite) m.fsWrites.inc({ ...l, device: d }, v);
        if (s.cpuShares !== undefined) m.shares.set(l, s.cpuShares);
        if (s.cpuQuota !== undefined) m.quota.set(l, s.cpuQuota);
        if (s.cpuPeriod !== undefined) m.period.set(l, s.cpuPeriod);
        m.memLimit.set(l, s.memoryLimit ?? 0);
        m.start.set(l, c.createdSeconds);
      }
    }
    for (const id of pathCache.keys()) if (!live.has(id)) pathCache.delete(id);
  }
  return { addSource: (s) => sources.add(s), removeSource: (s) => sources.delete(s) };
}

let onKiverRegistry: ReturnType<typeof registerContainerMetrics> | undefined;
/** The container metrics on Kiver's /metrics registry (under `kiver up` beside the server's), made once. */
export function containerMetrics(): ReturnType<typeof registerContainerMetrics> {
  return (onKiverRegistry ??= registerContainerMetrics(kiverRegistry));
}

/** Prometheus metrics of the log guard (prom-client), registered on the registry given. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type RemoveReason = 'file_gone' | 'not_regular' | 'dir_gone' | 'stale';
export type RescanReason = 'start' | 'periodic' | 'overflow' | 'new_directory' | 'poll' | 'root_changed';
export type LatencySource = 'event' | 'scan';
export type RefusedKind = 'symlink' | 'fifo' | 'socket' | 'device' | 'unknown' | 'outside_root' | 'too_deep';
export type ErrorKind =
  | 'watch'
  | 'watch_limit'
  | 'scan'
  | 'stat'
  | 'link'
  | 'unlink'
  | 'name_taken'
  | 'name_collision'
  | 'out_dir'
  | 'root';

export class GuardMetrics {
  readonly linksCreated: Counter;
  readonly linksRemoved: Counter<'reason'>;
  readonly linkLatency: Histogram<'source'>;
  readonly links: Gauge;
  readonly watches: Gauge;
  readonly unwatchedDirectories: Gauge;
  readonly watchLimitReached: Gauge;
  readonly rescans: Counter<'reason'>;
  readonly errors: Counter<'kind'>;
  readonly refused: Counter<'kind'>;
  readonly foreignEntries: Gauge;
  readonly rootOnSystemFs: Gauge;
  readonly reconcileSeconds: Gauge;
  readonly lastReconcile: Gauge;

  constructor(
    readonly registry: Registry,
    prefix: string,
    sample: () => { links: number; watches: number; unwatched: number; watchLimitReached: boolean },
  ) {
    const registers = [registry];
    // One guard per registry: a new guard (an agent restarted in the same process) takes the
    // kiver_guard_* metrics over instead of failing on "already registered". Counters restart at 0.
    for (const m of registry.getMetricsAsArray()) {
      const name = (m as unknown as { name: string }).name;
      if (name.startsWith(prefix)) registry.removeSingleMetric(name);
    }
    this.linksCreated = new Counter({
      name: `${prefix}links_created_total`,
      help: 'Symlinks created in the flat directory',
      registers,
    });
    this.linksRemoved = new Counter({
      name: `${prefix}links_removed_total`,
      help: 'Symlinks removed from the flat directory, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.linkLatency = new Histogram({
      name: `${prefix}link_latency_seconds`,
      help: 'Time from a file\'s creation (its birth time) to its link; source=event for inotify, scan for rescans and polling',
      labelNames: ['source'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.links = new Gauge({
      name: `${prefix}links`,
      help: 'Links the guard currently maintains',
      registers,
      collect() {
        this.set(sample().links);
      },
    });
    this.watches = new Gauge({
      name: `${prefix}watches`,
      help: 'inotify watches in use (one per directory)',
      registers,
      collect() {
        this.set(sample().watches);
      },
    });
    this.unwatchedDirectories = new Gauge({
      name: `${prefix}unwatched_directories`,
      help: 'Directories without an inotify watch, covered by periodic scanning',
      registers,
      collect() {
        this.set(sample().unwatched);
      },
    });
    this.watchLimitReached = new Gauge({
      name: `${prefix}watch_limit_reached`,
      help: '1 while the inotify watch limit (fs.inotify.max_user_watches) or --max-watches is exhausted',
      registers,
      collect() {
        this.set(sample().watchLimitReached ? 1 : 0);
      },
    });
    this.rescans = new Counter({
      name: `${prefix}rescans_total`,
      help: 'Directory rescans, by reason (start, periodic, overflow, new_directory, poll, root_changed)',
      labelNames: ['reason'],
      registers,
    });
    this.errors = new Counter({
      name: `${prefix}errors_total`,
      help: 'Errors, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.refused = new Counter({
      name: `${prefix}refused_entries_total`,
      help: 'Entries seen and refused a link (symlinks, FIFOs, sockets, devices, paths leaving the root, directories deeper than the depth limit), per observation',
      labelNames: ['kind'],
      registers,
    });
    this.foreignEntries = new Gauge({
      name: `${prefix}foreign_entries`,
      help: 'Entries in the flat directory the guard did not create (left alone) at the last reconcile',
      registers,
    });
    this.rootOnSystemFs = new Gauge({
      name: `${prefix}root_on_system_filesystem`,
      help: '1 when the log root is on the same filesystem as /',
      registers,
    });
    this.reconcileSeconds = new Gauge({
      name: `${prefix}last_reconcile_duration_seconds`,
      help: 'Duration of the last full reconcile',
      registers,
    });
    this.lastReconcile = new Gauge({
      name: `${prefix}last_reconcile_timestamp_seconds`,
      help: 'Unix time the last full reconcile finished',
      registers,
    });
  }
}

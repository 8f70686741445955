/**
 * The leader's IPAM loop: starts the grace of addresses whose owner is gone, frees those
 * past it that no registered node holds (audit.ts decides), and reports conflicts (an
 * address live on two nodes, or held without an allocation) as events and a gauge.
 */
import type { Compare, Store } from '../store/store.js';
import type { EventRecorder } from '../controllers/events.js';
import type { Logger } from '../log.js';
import type { Service } from '../model/service.js';
import type { ReplicaNetwork } from '../model/pool.js';
import { auditPools, freeLeaks, markReleased } from './audit.js';
import { Ipam, replicaNetwork } from './allocator.js';
import { ipamMetrics } from './metrics.js';
import { K } from '../model/keys.js';

export class IpamReclaimer {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    private readonly fence: () => Compare | undefined,
    private readonly ipam?: Ipam,
    private readonly everyMs = 5_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.runOnce().catch((err) => this.log.warn({ err: (err as Error).message }, 'ipam reclaim failed; will retry')).finally(() => (this.running = undefined));
  }

  async runOnce(): Promise<void> {
    const f = this.fence();
    if (!f) return;
    // Nothing allocated and nothing held: skip the full audit (it lists replicas and nodes).
    const [ips, held] = await Promise.all([this.store.list(K.ips, { limit: 1 }), this.store.list(K.ipHolderReports, { limit: 1 })]);
    if (ips.kvs.length === 0 && held.kvs.length === 0) return ipamMetrics.conflicts.set(0);
    const a = await auditPools(this.store);
    await markReleased(this.store, a.toRelease, f);
    const freed = await freeLeaks(this.store, a.leaks, f);
    for (const l of freed) this.ipam?.forget(l.pool, l.ip);
    ipamMetrics.reclaimed.inc(freed.length);
    if (freed.length) await this.events.record('pool/reclaim', 'Normal', 'Reclaimed', `freed ${freed.length} address(es) whose owner is gone: ${freed.slice(0, 10).map((l) => `${l.pool}/${l.ip}`).join(', ')}`);
    const conflicts = a.view.rows.filter((r) => r.state === 'conflicting');
    ipamMetrics.conflicts.set(conflicts.length);
    for (const c of conflicts) {
      await this.events.record(`pool/${c.pool}`, 'Warning', 'AddressConflict', `${c.ip} (${c.owner}): ${c.note ?? ''}`);
    }
  }
}

/** What the service controller asks when it places a replica: its network, undefined (no pool serves it), or why it must wait. */
export function addressSource(ipam: Ipam) {
  return async (svc: Service, ordinal: number): Promise<ReplicaNetwork | string | undefined> => {
    const a = await ipam.ensure({
      service: svc.spec.name, ordinal, serviceUid: svc.uid, app: svc.spec.app, graceSeconds: svc.spec.ipGraceSeconds,
      pin: svc.spec.ips?.[String(ordinal)],
    });
    if (!a) return undefined;
    if (!a.ok) {
      ipamMetrics.exhausted.inc();
      return a.reason;
    }
    if (a.fresh) ipamMetrics.allocations.inc();
    return replicaNetwork(a.pool, a.binding.ip);
  };
}

/**
 * Leader election on a store lease (works on etcd and SQLite alike): the leader
 * holds /kiver/leader bound to its lease. Only the leader runs controllers, and
 * every controller write also compares the leader key's mod revision (a fence),
 * so a deposed leader's late writes fail instead of landing.
 *
 * The lease is short (default 2 s, etcd's minimum) so a dead leader is replaced
 * within seconds; fencing is what makes a short lease safe. A leader that cannot
 * renew for two thirds of the TTL pauses its controllers (it can no longer be sure
 * it leads); if a later renewal succeeds and the key is still its own, it resumes
 * with the same fence instead of handing over, so an etcd leader change (a second
 * or two without writes) causes a pause, not a flap.
 */
import { NoSpaceError } from '../errors.js';
import { EventEmitter } from 'node:events';
import type { Compare, Store, Watch } from '../store/store.js';
import type { Logger } from '../log.js';
import { K } from '../model/keys.js';
import { metrics } from '../metrics.js';

const LEADER_KEY = K.leader;

export interface LeaderInfo {
  id: string;
  url: string;
  since: string;
}

export interface LeaderTiming {
  /** Lease TTL in seconds (etcd raises anything below its minimum, 2 s by default). */
  ttlSeconds: number;
  /** How often the leader renews (and a standby checks for a free key), ms. Default TTL/8. */
  renewMs?: number;
}

export class LeaderElection extends EventEmitter {
  private lease = 0;
  private leaderRevision = 0;
  /** The fence of our key while paused (renewals failing): resumed if the key is still ours. */
  private heldRevision = 0;
  private lastRenewed = 0;
  private running = false;
  private timer?: NodeJS.Timeout;
  private watch?: Watch;
  private campaigning = false;
  private renewing = false;

  constructor(
    private readonly store: Store,
    private readonly me: { id: string; url: string },
    private readonly log: Logger,
    timing: LeaderTiming = { ttlSeconds: 2 },
  ) {
    super();
    this.ttlMs = timing.ttlSeconds * 1000;
    this.renewMs = timing.renewMs ?? this.ttlMs / 8;
  }

  private readonly ttlMs: number;
  private readonly renewMs: number;

  get isLeader(): boolean {
    return this.leaderRevision > 0;
  }

  /** The compare every controller write must carry while leading. */
  fence(): Compare | undefined {
    return this.isLeader ? { key: LEADER_KEY, modRevision: this.leaderRevision } : undefined;
  }

  async start(): Promise<void> {
    this.running = true;
    const rev = await this.store.revision();
    this.watch = await this.store.watch(LEADER_KEY, {
      afterRevision: rev,
      onEvents: (events) => {
        if (events.some((e) => e.type === 'delete')) void this.campaign();
      },
      onError: () => {
        /* the periodic tick campaigns anyway */
      },
    });
    this.timer = setInterval(() => void this.tick(), this.renewMs);
    this.timer.unref();
    await this.campaign();
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    if (!this.isLeader && !this.heldRevision) return void this.campaign();
    if (this.isLeader && performance.now() - this.lastRenewed > (this.ttlMs * 2) / 3) this.pause('lease not renewed for 2/3 of its TTL');
    if (this.renewing) return;
    this.renewing = true;
    const sent = performance.now();
    try {
      await this.store.keepAlive(this.lease);
      this.lastRenewed = sent;
      if (!this.isLeader && this.heldRevision) await this.resume();
    } catch (err) {
      if (!(err instanceof NoSpaceError)) this.log.warn({ err: (err as Error).message }, 'leader lease renewal failed'); // a full disk is said once by the store
      if ((err as { status?: number }).status === 404) {
        this.pause('leader lease expired');
        this.heldRevision = 0;
      }
    } finally {
      this.renewing = false;
    }
  }

  /** Renewed again after a pause: lead again with the same fence if the key is still ours. */
  private async resume(): Promise<void> {
    const kv = await this.store.get(LEADER_KEY);
    if (kv && kv.modRevision === this.heldRevision && performance.now() - this.lastRenewed < (this.ttlMs * 2) / 3) {
      this.leaderRevision = this.heldRevision;
      this.heldRevision = 0;
      this.log.info({ id: this.me.id }, 'leader lease renewed again; resuming');
      metrics.leader.set(1);
      this.emit('elected');
    } else if (!kv || kv.modRevision !== this.heldRevision) {
      this.heldRevision = 0;
    }
  }

  private pause(why: string): void {
    if (!this.isLeader) return;
    this.log.warn({ why }, 'stepping down as leader');
    this.heldRevision = this.leaderRevision;
    this.leaderRevision = 0;
    metrics.leader.set(0);
    this.emit('deposed');
  }

  private async campaign(): Promise<void> {
    if (!this.running || this.isLeader || this.heldRevision || this.campaigning) return;
    this.campaigning = true;
    try {
      const cur = await this.store.get(LEADER_KEY);
      if (cur) return;
      const sent = performance.now();
      const lease = await this.store.grantLease(Math.ceil(this.ttlMs / 1000));
      const info: LeaderInfo = { ...this.me, since: new Date().toISOString() };
      const res = await this.store.txn({
        compare: [{ key: LEADER_KEY, modRevision: 0 }],
        success: [{ type: 'put', key: LEADER_KEY, value: JSON.stringify(info), lease }],
      });
      if (!res.succeeded) {
        await this.store.revokeLease(lease).catch(() => {});
        return;
      }
      this.lease = lease;
      this.lastRenewed = sent;
      this.leaderRevision = res.revision;
      this.log.info({ id: this.me.id }, 'elected leader');
      metrics.leader.set(1);
      metrics.leaderTransitions.inc();
      this.emit('elected');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'campaign failed');
    } finally {
      this.campaigning = false;
    }
  }

  async leader(): Promise<LeaderInfo | undefined> {
    const kv = await this.store.get(LEADER_KEY);
    return kv ? (JSON.parse(kv.value) as LeaderInfo) : undefined;
  }

  /** Gives up leadership at once (a graceful stop hands over without waiting for the TTL). */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    // Hand over first (a planned restart should not make the others wait), then tidy up.
    if (this.isLeader || this.heldRevision) {
      const rev = this.leaderRevision || this.heldRevision;
      const was = this.isLeader;
      this.leaderRevision = 0;
      this.heldRevision = 0;
      metrics.leader.set(0);
      if (was) this.emit('deposed');
      await this.store.txn({ compare: [{ key: LEADER_KEY, modRevision: rev }], success: [{ type: 'delete', key: LEADER_KEY }] }).catch(() => {});
      await this.store.revokeLease(this.lease).catch(() => {});
    }
    await this.watch?.cancel().catch(() => {});
  }
}

/**
 * Leader election on a store lease (works on etcd and SQLite alike): the leader
 * holds /kiver/leader bound to its lease. Only the leader runs controllers, and
 * every controller write also compares the leader key's mod revision (a fence),
 * so a deposed leader's late writes fail instead of landing.
 *
 * A leader that cannot renew its lease for half the TTL steps down on its own,
 * well before the lease (granted at least that long ago) can expire and be taken
 * over by another server.
 */
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

export class LeaderElection extends EventEmitter {
  private lease = 0;
  private leaderRevision = 0;
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
    private readonly ttlSeconds = 10,
  ) {
    super();
  }

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
    this.timer = setInterval(() => void this.tick(), (this.ttlSeconds * 1000) / 4);
    this.timer.unref();
    await this.campaign();
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    if (!this.isLeader) return void this.campaign();
    if (Date.now() - this.lastRenewed > (this.ttlSeconds * 1000) / 2) return this.stepDown('lease not renewed for half its TTL');
    if (this.renewing) return;
    this.renewing = true;
    const sent = Date.now();
    try {
      await this.store.keepAlive(this.lease);
      this.lastRenewed = sent;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'leader lease renewal failed');
      if ((err as { status?: number }).status === 404) this.stepDown('leader lease expired');
    } finally {
      this.renewing = false;
    }
  }

  private stepDown(why: string): void {
    if (!this.isLeader) return;
    this.log.warn({ why }, 'stepping down as leader');
    this.leaderRevision = 0;
    metrics.leader.set(0);
    this.emit('deposed');
  }

  private async campaign(): Promise<void> {
    if (!this.running || this.isLeader || this.campaigning) return;
    this.campaigning = true;
    try {
      const cur = await this.store.get(LEADER_KEY);
      if (cur) return;
      const sent = Date.now();
      const lease = await this.store.grantLease(this.ttlSeconds);
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
    await this.watch?.cancel().catch(() => {});
    if (this.isLeader) {
      const rev = this.leaderRevision;
      this.leaderRevision = 0;
      metrics.leader.set(0);
      this.emit('deposed');
      await this.store.txn({ compare: [{ key: LEADER_KEY, modRevision: rev }], success: [{ type: 'delete', key: LEADER_KEY }] }).catch(() => {});
      await this.store.revokeLease(this.lease).catch(() => {});
    }
  }
}

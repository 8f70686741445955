/**
 * The leader's backup loop: creates scheduled backups, applies retention, fails jobs
 * whose agent went quiet. Runs on the leader only (started and stopped with its other
 * controllers). Exactly once per slot: a scheduled backup's id is derived from its slot,
 * and it is created in one transaction with the policy's `lastSlot` that compares the
 * policy's revision and the leader fence — a second leader, a restarted one or a
 * deposed one racing it cannot create the slot twice.
 */
import type { StoreCache } from '../controllers/cache.js';
import type { Compare } from '../store/store.js';
import type { Logger } from '../log.js';
import { K } from '../model/keys.js';
import type { BackupPolicy } from '../model/backup.js';
import type { BackupJobs } from './jobs.js';
import { dueSlot } from './policy.js';
import { ConflictError } from '../errors.js';

export interface BackupControllerOptions {
  /** The clock schedules run on (tests pass a test clock). */
  now?: () => Date;
  tickMs?: number;
  /** A pending or running job without a report for this long fails (default 120 s). */
  staleMs?: number;
}

export class BackupController {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly now: () => Date;

  constructor(private readonly cache: StoreCache, private readonly jobs: BackupJobs, private readonly log: Logger,
    private readonly fence: () => Compare | undefined, private readonly opts: BackupControllerOptions = {}) {
    this.now = opts.now ?? (() => new Date());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass; overlapping ticks are skipped. */
  tick(): Promise<void> {
    this.running ??= this.pass().catch((err) => this.log.warn({ err: (err as Error).message }, 'backup controller pass failed'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const now = this.now();
    for (const kv of this.cache.all(K.backupPolicies)) {
      const fence = this.fence();
      if (!fence) return; // deposed mid-pass
      const p = JSON.parse(kv.value) as BackupPolicy;
      const slot = dueSlot(p, now);
      if (slot) {
        const next: BackupPolicy = { ...p, lastSlot: slot.toISOString() };
        try {
          await this.jobs.create({
            service: p.service, target: p.target, trigger: 'schedule', slot, now,
            compare: [{ key: kv.key, modRevision: kv.modRevision }, fence],
            ops: [{ type: 'put', key: kv.key, value: JSON.stringify(next) }],
          });
        } catch (err) {
          // Lost a race (another leader took the slot, the policy changed): the cache catches up and the slot is not due again.
          if (!(err instanceof ConflictError)) this.log.warn({ err: (err as Error).message, service: p.service }, 'scheduled backup not created');
        }
      }
      await this.jobs.applyRetention(p, now, fence).catch((err) => this.log.warn({ err: (err as Error).message, service: p.service }, 'retention failed'));
    }
    await this.jobs.failStale(now, this.opts.staleMs ?? 120_000);
  }
}

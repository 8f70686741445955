/**
 * Backup metrics for the monitoring issue's alert rules. The last success is derived
 * from the backup records in the server's cache at scrape time, so every server
 * reports the same value; failures count the failed reports this server took.
 */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';
import type { StoreCache } from '../controllers/cache.js';
import type { Backup } from '../model/backup.js';
import { K } from '../model/keys.js';

const caches = new Set<StoreCache>();

export const backupMetrics = {
  failures: new Counter({
    name: 'kiver_backup_failures_total', help: 'Backups that failed, by service', labelNames: ['service'], registers: [registry],
  }),
  lastSuccess: new Gauge({
    name: 'kiver_backup_last_success_timestamp_seconds', help: 'When the newest completed and verified backup of a service finished (Unix seconds)',
    labelNames: ['service'], registers: [registry],
    collect() {
      this.reset();
      const last = new Map<string, number>();
      for (const c of caches) {
        for (const kv of c.all(K.backups)) {
          const b = JSON.parse(kv.value) as Backup;
          if (b.state !== 'completed' || !b.verified || !b.finishedAt) continue;
          last.set(b.service, Math.max(last.get(b.service) ?? 0, Date.parse(b.finishedAt) / 1000));
        }
      }
      for (const [service, t] of last) this.set({ service }, t);
    },
  }),
  /** The server's cache is a source of the last-success gauge while the server runs. */
  add(c: StoreCache) { caches.add(c); },
  remove(c: StoreCache) { caches.delete(c); },
};

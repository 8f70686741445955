import type { Store } from '../store/store.js';
import type { KiverEvent } from '../model/event.js';
import { K } from '../model/keys.js';
import type { Logger } from '../log.js';

const MAX_AGE_MS = 60 * 60 * 1000;

/** Writes events that explain why something is pending or failing; repeats bump a count. */
export class EventRecorder {
  constructor(private readonly store: Store, private readonly log: Logger) {}

  async record(object: string, type: KiverEvent['type'], reason: string, message: string): Promise<void> {
    const key = K.event(object, reason);
    const now = new Date().toISOString();
    try {
      const cur = await this.store.get(key);
      const prev = cur ? (JSON.parse(cur.value) as KiverEvent) : undefined;
      const ev: KiverEvent = {
        object, type, reason, message,
        count: prev && prev.message === message ? prev.count + 1 : 1,
        firstAt: prev && prev.message === message ? prev.firstAt : now,
        lastAt: now,
      };
      await this.store.put(key, JSON.stringify(ev));
      // Repeats only bump the count; the log says each cause once.
      if (ev.count === 1) (type === 'Warning' ? this.log.warn : this.log.info).call(this.log, { object, reason }, message);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, object, reason }, 'could not record event');
    }
  }

  /** Drops events older than an hour so the store does not grow without bound. */
  async prune(now = Date.now()): Promise<void> {
    const res = await this.store.list(K.events);
    for (const kv of res.kvs) {
      const ev = JSON.parse(kv.value) as KiverEvent;
      if (now - Date.parse(ev.lastAt) > MAX_AGE_MS) {
        await this.store.txn({ compare: [{ key: kv.key, modRevision: kv.modRevision }], success: [{ type: 'delete', key: kv.key }] });
      }
    }
  }
}

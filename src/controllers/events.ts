import type { Store } from '../store/store.js';
import type { KiverEvent } from '../model/event.js';
import { K } from '../model/keys.js';
import type { Logger } from '../log.js';
import { NoSpaceError, TooManyRequestsError } from '../errors.js';

const MAX_AGE_MS = 60 * 60 * 1000;
/** Events kept at most (oldest pruned first): a forged storm cannot fill the store. */
export const MAX_EVENTS = 5000;
/** Longer messages are cut here (with a marker). */
export const MAX_EVENT_MESSAGE = 1024;
/** Per node: a burst of this many events, then EVENT_RATE per second. */
export const EVENT_BURST = 200;
export const EVENT_RATE = 5;

/** Writes events that explain why something is pending or failing; repeats bump a count. */
export class EventRecorder {
  /** New event keys since the last prune; past a tenth of the cap, a prune runs at once. */
  private created = 0;
  private pruning?: Promise<void>;

  constructor(private readonly store: Store, private readonly log: Logger, private readonly maxEvents = MAX_EVENTS) {}

  async record(object: string, type: KiverEvent['type'], reason: string, message: string): Promise<void> {
    const key = K.event(object, reason);
    if (message.length > MAX_EVENT_MESSAGE) message = `${message.slice(0, MAX_EVENT_MESSAGE)}… (truncated)`;
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
      if (!cur && ++this.created > this.maxEvents / 10) void this.prune();
      // Repeats only bump the count; the log says each cause once.
      if (ev.count === 1) (type === 'Warning' ? this.log.warn : this.log.info).call(this.log, { object, reason }, message);
    } catch (err) {
      if (err instanceof NoSpaceError) return; // said once per episode by the store
      this.log.warn({ err: (err as Error).message, object, reason }, 'could not record event');
    }
  }

  /** Drops events older than an hour, then the oldest beyond the cap, so the store does not grow without bound. */
  prune(now = Date.now()): Promise<void> {
    this.pruning ??= this.pruneOnce(now)
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'could not prune events'))
      .finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  private async pruneOnce(now: number): Promise<void> {
    this.created = 0;
    const res = await this.store.list(K.events);
    const kept = res.kvs.map((kv) => ({ kv, at: Date.parse((JSON.parse(kv.value) as KiverEvent).lastAt) })).sort((a, b) => b.at - a.at);
    for (const [i, { kv, at }] of kept.entries()) {
      if (now - at > MAX_AGE_MS || i >= this.maxEvents) {
        await this.store.txn({ compare: [{ key: kv.key, modRevision: kv.modRevision }], success: [{ type: 'delete', key: kv.key }] });
      }
    }
  }
}

/**
 * Per-node token buckets for agent events: a node past its share gets 429, and the
 * storm is logged once per minute per node with how many were refused.
 */
export class EventLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; refused: number; loggedAt: number }>();

  constructor(private readonly log: Logger, private readonly burst = EVENT_BURST, private readonly rate = EVENT_RATE) {}

  take(node: string, now = Date.now()): void {
    let b = this.buckets.get(node);
    if (!b) this.buckets.set(node, (b = { tokens: this.burst, at: now, refused: 0, loggedAt: 0 }));
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    b.refused++;
    if (now - b.loggedAt > 60_000) {
      this.log.warn({ node, refused: b.refused }, `event storm from node ${node}: events refused beyond ${this.rate}/s (burst ${this.burst})`);
      b.loggedAt = now;
      b.refused = 0;
    }
    throw new TooManyRequestsError(`node ${node} sends more than ${this.rate} events/s; slow down`);
  }
}

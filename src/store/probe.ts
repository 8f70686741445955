/**
 * Whether this process can reach its store right now, from a small read repeated on a
 * timer. A store call retries through failover for many seconds, so a request that
 * needs the store would hang that long on a server cut off from it; routes check
 * `ok` first and answer 503 at once, which sends agents to another server.
 * The read is of one key (the leader key), so /readyz can also say who leads.
 */
import type { Store } from './store.js';

export class StoreProbe {
  private timer?: NodeJS.Timeout;
  private inFlight = false;
  /** performance.now() of the last answered probe's start (0: never). */
  private lastOk = 0;
  /** performance.now() of the probe in flight's start. */
  private sentAt = 0;
  private lastFailed = false;
  private lastError = '';
  /** The probed key's value at the last answer (undefined: absent). */
  value: string | undefined;

  constructor(private readonly store: Store, private readonly key: string, private readonly everyMs = 500, private readonly staleMs = 1500) {}

  start(): void {
    this.lastOk = performance.now();
    this.timer = setInterval(() => void this.probe(), this.everyMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    const sent = performance.now();
    this.sentAt = sent;
    try {
      this.value = (await this.store.get(this.key))?.value;
      this.lastOk = Math.max(this.lastOk, sent);
      this.lastFailed = false;
    } catch (err) {
      this.lastFailed = true;
      this.lastError = (err as Error).message;
    } finally {
      this.inFlight = false;
    }
  }

  /**
   * False once a probe has waited for its answer longer than staleMs, or has failed with no
   * answer since for that long. Counted from when probes were sent, not from the last
   * answer: a busy event loop that runs the probe timer late is not a store outage (it
   * was, and answered every agent with 503 — whose retries made the loop busier still).
   */
  get ok(): boolean {
    const now = performance.now();
    if (this.inFlight && now - this.sentAt >= this.staleMs) return false;
    return !(this.lastFailed && now - this.lastOk >= this.staleMs);
  }

  /** Why the store counts as unreachable (for /readyz and 503 bodies). */
  get reason(): string {
    const ago = Math.round(performance.now() - (this.inFlight ? this.sentAt : this.lastOk));
    return `store not answering for ${ago} ms${this.lastError ? ` (${this.lastError})` : ''}`;
  }
}

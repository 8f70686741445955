/**
 * When replicas may leave lost nodes (Kubernetes' node lifecycle controller is the model):
 *
 * - the brake: when more than `threshold` (default 55 %) of the registered nodes are
 *   NotReady, the control plane suspects itself (a server cut off from its store, a
 *   network fault) rather than the nodes: it marks them but moves nothing, and says so
 *   once (an event and the kiver_eviction_brake gauge) until enough nodes are back, and
 *   then for one more settle window (a node grace): the others come back within it, so the
 *   first nodes back do not receive every stranded replica;
 * - a node must have been seen lost for an observation window (a third of the grace plus a
 *   second: one heartbeat interval) before anything moves off it, so nodes that lost their
 *   server at the same moment — whose leases lapse within one heartbeat interval of each
 *   other — are counted together rather than evicted one by one below the threshold;
 * - otherwise moves off lost nodes go at a bounded rate (a token bucket);
 * - how long each node has been seen lost, on this process's monotonic clock, counted
 *   from when this leader first saw it NotReady (a new leader starts counting afresh:
 *   later, never earlier, than the truth), for the `wait` disconnect policy.
 */
import type { NodeIndex } from './node-index.js';
import type { EventRecorder } from './events.js';
import { metrics } from '../metrics.js';

export interface EvictionOptions {
  /** Fraction of NotReady nodes above which nothing moves (0..1). */
  threshold?: number;
  /** After the brake releases, keep holding this long (ms) so the other nodes can return (a node grace). */
  settleMs?: number;
  /** How long a node must have been seen lost before replicas leave it (default settleMs / 3 + 1 s). */
  observeMs?: number;
  /** Moves off lost nodes per second, and the burst allowed at once. */
  ratePerSecond?: number;
  burst?: number;
}

export class EvictionBrake {
  private readonly threshold: number;
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private refilledAt = performance.now();
  private readonly settleMs: number;
  private engaged = false;
  private over = false;
  private releasedAt = -Infinity;
  private readonly lostSince = new Map<string, number>();

  constructor(private readonly nodes: NodeIndex, private readonly events: EventRecorder, opts: EvictionOptions = {}) {
    this.threshold = opts.threshold ?? 0.55;
    this.rate = opts.ratePerSecond ?? 2;
    this.burst = opts.burst ?? 10;
    this.tokens = this.burst;
    this.settleMs = opts.settleMs ?? 30_000;
    this.observeMs = opts.observeMs ?? this.settleMs / 3 + 1000;
  }

  /** Seen lost for at least the observation window. */
  readonly observeMs: number;

  /** True while too many nodes are NotReady to trust that they are gone (records the transition once). */
  holding(): boolean {
    const all = this.nodes.candidates();
    const now = performance.now();
    let lost = 0;
    for (const n of all) {
      if (n.ready) {
        this.lostSince.delete(n.name);
        continue;
      }
      lost++;
      if (!this.lostSince.has(n.name)) this.lostSince.set(n.name, now);
    }
    const over = all.length > 1 && lost / all.length > this.threshold;
    if (this.over && !over) this.releasedAt = now;
    this.over = over;
    const hold = over || now - this.releasedAt < this.settleMs;
    if (hold !== this.engaged) {
      this.engaged = hold;
      metrics.evictionBrake.set(hold ? 1 : 0);
      const pct = Math.round((100 * lost) / all.length);
      void this.events.record('cluster/eviction', hold ? 'Warning' : 'Normal', hold ? 'EvictionPaused' : 'EvictionResumed', hold
        ? `${lost} of ${all.length} nodes (${pct} %) are not ready, over the ${Math.round(this.threshold * 100)} % threshold: suspecting the control plane or the network, moving no replicas`
        : `${lost} of ${all.length} nodes not ready (${pct} %) after a settle window: moving replicas off lost nodes again`);
    }
    if (hold && !over) this.recheck(this.settleMs - (now - this.releasedAt));
    return hold;
  }

  /** Called when the settle window ends, so waiting moves go ahead (set by the controller). */
  onSettled?: () => void;
  private settleTimer?: NodeJS.Timeout;
  private recheck(ms: number): void {
    if (this.settleTimer) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.holding();
      this.onSettled?.();
    }, ms + 10).unref();
  }

  /** Takes one move from the rate limit; false (and when to retry, ms) when none is left. */
  take(): { ok: true } | { ok: false; retryMs: number } {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryMs: Math.ceil(((1 - this.tokens) / this.rate) * 1000) };
  }

  /** Ms since this process first saw the node NotReady (0 if it has not); Infinity for a node removed from the cluster (nothing to observe). */
  lostForMs(node: string): number {
    if (!this.nodes.get(node)) {
      this.lostSince.delete(node);
      return Infinity;
    }
    const since = this.lostSince.get(node);
    return since === undefined ? 0 : performance.now() - since;
  }
}

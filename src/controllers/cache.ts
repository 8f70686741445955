/**
 * An in-memory mirror of everything under /kiver/ (like a Kubernetes informer):
 * list once, then follow the watch. Controllers and the agent long-poll read it;
 * API reads go to the store for read-your-writes.
 *
 * Keys are grouped by collection prefix and then by their first path segment
 * (service name, node name), so "replicas of service X" is a map lookup.
 */
import { EventEmitter } from 'node:events';
import type { KeyValue, Store, Watch, WatchEvent } from '../store/store.js';
import { CompactedError } from '../errors.js';
import { K } from '../model/keys.js';

export interface CacheChange {
  key: string;
  kv?: KeyValue;
  prev?: KeyValue;
}

const ROOT = K.root;

function split(key: string): [collection: string, group: string] | undefined {
  if (!key.startsWith(ROOT)) return undefined;
  const rest = key.slice(ROOT.length);
  const i = rest.indexOf('/');
  if (i < 0) return undefined;
  const collection = `${ROOT}${rest.slice(0, i + 1)}`;
  const tail = rest.slice(i + 1);
  const j = tail.indexOf('/');
  return [collection, j < 0 ? tail : tail.slice(0, j)];
}

export class StoreCache extends EventEmitter {
  private readonly data = new Map<string, Map<string, Map<string, KeyValue>>>();
  private watch?: Watch;
  private stopped = false;
  /** Last revision seen from the store (list or watch). */
  revision = 0;

  constructor(private readonly store: Store) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const res = await this.store.list(ROOT);
    this.data.clear();
    for (const kv of res.kvs) this.set(kv);
    this.revision = res.revision;
    this.watch = await this.store.watch(ROOT, {
      afterRevision: res.revision,
      onEvents: (events, revision) => this.onEvents(events, revision),
      onError: (err) => void this.restart(err),
    });
    this.emit('synced');
  }

  private async restart(err: Error): Promise<void> {
    if (this.stopped) return;
    this.emit('warning', `cache watch failed (${err.message}); re-listing`);
    await this.watch?.cancel().catch(() => {});
    for (;;) {
      try {
        await this.start();
        this.emit('resync');
        return;
      } catch (e) {
        if (this.stopped) return;
        if (!(e instanceof CompactedError)) await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.cancel();
  }

  private set(kv: KeyValue): KeyValue | undefined {
    const s = split(kv.key);
    if (!s) return undefined;
    let groups = this.data.get(s[0]);
    if (!groups) this.data.set(s[0], (groups = new Map()));
    let g = groups.get(s[1]);
    if (!g) groups.set(s[1], (g = new Map()));
    const prev = g.get(kv.key);
    g.set(kv.key, kv);
    return prev;
  }

  private del(key: string): KeyValue | undefined {
    const s = split(key);
    if (!s) return undefined;
    const g = this.data.get(s[0])?.get(s[1]);
    const prev = g?.get(key);
    g?.delete(key);
    if (g && g.size === 0) this.data.get(s[0])!.delete(s[1]);
    return prev;
  }

  private onEvents(events: WatchEvent[], revision: number): void {
    for (const ev of events) {
      const cur = this.getKv(ev.kv.key);
      // A local write (applyLocal) may already be newer than this event.
      if (cur && cur.modRevision >= ev.kv.modRevision) continue;
      if (ev.type === 'put') {
        const prev = this.set(ev.kv);
        this.emit('change', { key: ev.kv.key, kv: ev.kv, prev } satisfies CacheChange);
      } else {
        const prev = this.del(ev.kv.key);
        if (prev) this.emit('change', { key: ev.kv.key, prev } satisfies CacheChange);
      }
    }
    this.revision = revision;
    this.emit('revision', revision);
  }

  /** Records our own successful write at once, so the next plan sees it before the watch does. */
  applyLocal(key: string, value: string | undefined, revision: number): void {
    const cur = this.getKv(key);
    if (cur && cur.modRevision >= revision) return;
    if (value === undefined) {
      const prev = this.del(key);
      if (prev) this.emit('change', { key, prev } satisfies CacheChange);
      return;
    }
    const kv: KeyValue = {
      key,
      value,
      createRevision: cur?.createRevision ?? revision,
      modRevision: revision,
      version: (cur?.version ?? 0) + 1,
      lease: 0,
    };
    const prev = this.set(kv);
    this.emit('change', { key, kv, prev } satisfies CacheChange);
  }

  /** Resolves once the cache has seen every write up to the store's current revision. */
  async sync(timeoutMs = 10_000): Promise<void> {
    const target = await this.store.revision();
    if (this.revision >= target) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('revision', on);
        reject(new Error(`cache did not reach revision ${target} in ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (rev: number) => {
        if (rev >= target) {
          clearTimeout(t);
          this.off('revision', on);
          resolve();
        }
      };
      this.on('revision', on);
    });
  }

  getKv(key: string): KeyValue | undefined {
    const s = split(key);
    return s ? this.data.get(s[0])?.get(s[1])?.get(key) : undefined;
  }

  get<T>(key: string): T | undefined {
    const kv = this.getKv(key);
    return kv ? (JSON.parse(kv.value) as T) : undefined;
  }

  /** Entries of one group, e.g. group('/kiver/replicas/', 'redis'). */
  group(collection: string, group: string): KeyValue[] {
    const g = this.data.get(collection)?.get(group);
    return g ? [...g.values()] : [];
  }

  /** Group names present in a collection, e.g. every service name with replicas. */
  groups(collection: string): string[] {
    return [...(this.data.get(collection)?.keys() ?? [])];
  }

  *all(collection: string): Generator<KeyValue> {
    for (const g of this.data.get(collection)?.values() ?? []) yield* g.values();
  }
}

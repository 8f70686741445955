/**
 * The scheduler's view of the nodes, kept current from the cache incrementally so
 * a placement does not rebuild a 10,000-node snapshot each time. It mirrors only what
 * is committed: plans book into their own copy (scheduler/plan-allocs.ts).
 */
import type { StoreCache, CacheChange } from './cache.js';
import { K } from '../model/keys.js';
import { emptyAlloc, isNodeReady, type Node, type NodeAlloc } from '../model/node.js';
import type { NodeCandidate } from '../scheduler/placement.js';

export class NodeIndex {
  private readonly byName = new Map<string, NodeCandidate>();
  private list: NodeCandidate[] | undefined;
  private ready = 0;

  constructor(private readonly cache: StoreCache) {
    for (const kv of cache.all(K.nodes)) this.refresh(JSON.parse(kv.value).name);
    cache.on('change', (c: CacheChange) => this.onChange(c));
    cache.on('resync', () => this.rebuild());
  }

  private rebuild(): void {
    this.byName.clear();
    this.list = undefined;
    this.ready = 0;
    for (const kv of this.cache.all(K.nodes)) this.refresh((JSON.parse(kv.value) as Node).name);
  }

  private onChange(c: CacheChange): void {
    for (const prefix of [K.nodes, K.alives, K.allocs]) {
      if (c.key.startsWith(prefix)) this.refresh(c.key.slice(prefix.length));
    }
  }

  /** Re-reads one node's state (readiness, capacity, labels, committed allocation) from the cache. */
  private refresh(name: string): void {
    const node = this.cache.get<Node>(K.node(name));
    const cur = this.byName.get(name);
    if (!node) {
      if (!cur) return;
      this.byName.delete(name);
      if (cur.ready) this.ready--;
      if (this.list) this.list = spliced(this.list, this.at(name), 1);
      return;
    }
    const alloc = this.cache.get<NodeAlloc>(K.alloc(name)) ?? emptyAlloc();
    const ready = isNodeReady(this.cache.getKv(K.alive(name)));
    if (cur) {
      if (cur.ready !== ready) this.ready += ready ? 1 : -1;
      Object.assign(cur, { ready, cordoned: node.cordoned, cpus: node.cpus, memory: node.memory, labels: node.labels ?? {}, alloc });
      return;
    }
    const cand: NodeCandidate = { name, ready, cordoned: node.cordoned, cpus: node.cpus, memory: node.memory, labels: node.labels ?? {}, alloc };
    this.byName.set(name, cand);
    if (ready) this.ready++;
    // Kept sorted by insertion (a binary search), not re-sorted: 10,000 nodes joining would sort 10,000 times.
    // A new array, never changed in place: a plan's overlay is indexed by position in the list it saw.
    if (this.list) this.list = spliced(this.list, this.at(name), 0, cand);
  }

  /** Where `name` is (or would go) in the sorted list. */
  private at(name: string): number {
    const list = this.list!;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].name < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  candidates(): NodeCandidate[] {
    if (!this.list) this.list = [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    return this.list;
  }

  get(name: string): NodeCandidate | undefined {
    return this.byName.get(name);
  }

  readyCount(): number {
    return this.ready;
  }
}

/** Array.prototype.toSpliced (ES2023) for an ES2022 target. */
function spliced<T>(list: T[], at: number, remove: number, ...add: T[]): T[] {
  const out = list.slice();
  out.splice(at, remove, ...add);
  return out;
}

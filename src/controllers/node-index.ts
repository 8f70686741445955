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

  constructor(private readonly cache: StoreCache) {
    for (const kv of cache.all(K.nodes)) this.refresh(JSON.parse(kv.value).name);
    cache.on('change', (c: CacheChange) => this.onChange(c));
    cache.on('resync', () => this.rebuild());
  }

  private rebuild(): void {
    this.byName.clear();
    this.list = undefined;
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
    if (!node) {
      if (this.byName.delete(name)) this.list = undefined;
      return;
    }
    const alloc = this.cache.get<NodeAlloc>(K.alloc(name)) ?? emptyAlloc();
    const ready = isNodeReady(this.cache.getKv(K.alive(name)));
    const cur = this.byName.get(name);
    if (cur) {
      Object.assign(cur, { ready, cordoned: node.cordoned, cpus: node.cpus, memory: node.memory, labels: node.labels ?? {}, alloc });
      return;
    }
    this.byName.set(name, { name, ready, cordoned: node.cordoned, cpus: node.cpus, memory: node.memory, labels: node.labels ?? {}, alloc });
    this.list = undefined;
  }

  candidates(): NodeCandidate[] {
    if (!this.list) this.list = [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    return this.list;
  }

  get(name: string): NodeCandidate | undefined {
    return this.byName.get(name);
  }

  readyCount(): number {
    let n = 0;
    for (const c of this.byName.values()) if (c.ready) n++;
    return n;
  }
}

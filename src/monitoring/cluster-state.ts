/** The per-node facts health checks and utilization metrics both read from the cache. */
import type { StoreCache } from '../controllers/cache.js';
import { K } from '../model/keys.js';
import { emptyAlloc, isNodeReady, type Node, type NodeAlloc, type NodeHealth } from '../model/node.js';

export interface NodeFacts {
  node: Node;
  ready: boolean;
  alloc: NodeAlloc;
  health?: NodeHealth;
}

export function nodeFacts(cache: StoreCache): NodeFacts[] {
  return [...cache.all(K.nodes)].map((kv) => {
    const node = JSON.parse(kv.value) as Node;
    return {
      node,
      ready: isNodeReady(cache.getKv(K.alive(node.name))),
      alloc: cache.get<NodeAlloc>(K.alloc(node.name)) ?? emptyAlloc(),
      health: cache.get<NodeHealth>(K.nodeHealth(node.name)),
    };
  });
}

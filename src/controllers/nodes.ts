/** Node readiness: a node is Ready while its agent's lease-bound key exists. */
import type { StoreCache, CacheChange } from './cache.js';
import type { NodeIndex } from './node-index.js';
import type { EventRecorder } from './events.js';
import { K } from '../model/keys.js';
import { metrics } from '../metrics.js';

export class NodeController {
  private readonly onChange = (c: CacheChange) => {
    if (!c.key.startsWith(K.alives)) return;
    const name = c.key.slice(K.alives.length);
    metrics.nodesReady.set(this.nodes.readyCount());
    if (c.kv && !c.prev) void this.events.record(`node/${name}`, 'Normal', 'NodeReady', `node ${name} is ready`);
    if (!c.kv) void this.events.record(`node/${name}`, 'Warning', 'NodeNotReady', `node ${name} stopped heartbeating (lease expired)`);
  };

  constructor(private readonly cache: StoreCache, private readonly nodes: NodeIndex, private readonly events: EventRecorder) {}

  start(): void {
    this.cache.on('change', this.onChange);
    metrics.nodesReady.set(this.nodes.readyCount());
  }

  stop(): void {
    this.cache.off('change', this.onChange);
  }
}

/**
 * Tells the server which fixed addresses this node's containers hold (running or not: a
 * stopped container with a restart policy can come back). The server frees an address
 * only when no registered node reports holding it, so this report is what keeps an
 * address from being handed out while a container here may still use it.
 */
import type { ApiClient } from '../client/api-client.js';
import type { ManagedContainer } from './runtime/docker.js';

export class AddressReporter {
  private last?: string;

  constructor(private readonly client: () => ApiClient, private readonly node: string) {}

  /** Whether the last report named any address (an empty one must still be sent once). */
  get tracking(): boolean {
    return this.last === undefined || this.last !== '[]';
  }

  async report(containers: ManagedContainer[]): Promise<void> {
    const addresses = [...new Set(containers.flatMap((c) => (c.ip ? [c.ip] : [])))].sort();
    const key = JSON.stringify(addresses);
    if (key === this.last) return;
    await this.client().put('/v1/agent/addresses', { node: this.node, addresses }, { timeoutMs: 10_000, idempotent: true });
    this.last = key;
  }
}

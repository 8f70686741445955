/**
 * One TCP endpoint: accepts clients and splices each to the current target.
 * When the target changes (a new primary) every connection made to the old one
 * is closed, so no client keeps writing to a fenced server; while there is no
 * target (during a failover) new clients wait for one instead of failing.
 */
import net from 'node:net';
import type { Addr } from './types.js';

export interface ProxyOptions {
  /** How long a new client waits for a target before it is closed (ms). */
  holdMs?: number;
}

export class TcpProxy {
  private server?: net.Server;
  private readonly conns = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private target?: Addr;
  private generation = 0;
  private waiters: (() => void)[] = [];

  constructor(
    /** Picks a target per connection (the primary; for reads, the next replica). */
    private readonly pick: () => Addr | undefined,
    private readonly opts: ProxyOptions = {},
  ) {}

  async listen(host: string, port: number): Promise<void> {
    const server = net.createServer((sock) => void this.accept(sock));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, host, () => {
        server.off('error', rej);
        res();
      });
    });
    this.server = server;
  }

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** The target (set) changed: close what was connected under the old one; wake waiting clients. */
  retarget(key: string | undefined): void {
    const now = key;
    if (now === this.key) return;
    this.key = now;
    this.generation++;
    for (const c of this.conns) c.client.destroy(), c.upstream.destroy();
    this.conns.clear();
    if (now !== undefined) for (const w of this.waiters.splice(0)) w();
  }
  private key?: string;

  private async accept(client: net.Socket): Promise<void> {
    client.on('error', () => {});
    client.setNoDelay(true);
    let target = this.key === undefined ? undefined : this.pick();
    if (!target) {
      const holdMs = this.opts.holdMs ?? 15_000;
      await new Promise<void>((res) => {
        const t = setTimeout(res, holdMs);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
      target = this.key === undefined ? undefined : this.pick();
      if (!target || client.destroyed) {
        client.destroy();
        return;
      }
    }
    const gen = this.generation;
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    const pair = { client, upstream };
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.conns.delete(pair);
    };
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    if (gen !== this.generation) return close();
    this.conns.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    for (const w of this.waiters.splice(0)) w();
    for (const c of this.conns) c.client.destroy(), c.upstream.destroy();
    this.conns.clear();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}

/**
 * The client endpoints of managed services, served by every Kiver server: for
 * each service a write port (→ the primary in /kiver/service-roles/) and a read
 * port (→ the replicas in turn, else the primary). They follow the store through
 * the server's watch cache, so a new primary is reachable the moment the role
 * controller records it.
 */
import type { StoreCache, CacheChange } from '../controllers/cache.js';
import type { Logger } from '../log.js';
import { K } from '../model/keys.js';
import type { Service } from '../model/service.js';
import type { ServiceRoles } from '../model/service-roles.js';
import type { Replica } from '../model/replica.js';
import type { Node } from '../model/node.js';
import { managedType } from './catalog.js';
import { TcpProxy } from './endpoint-proxy.js';
import type { Addr } from './types.js';

interface Pair {
  ports: { write: number; read: number };
  write: TcpProxy;
  read: TcpProxy;
  next: number;
}

export class ServiceEndpoints {
  private readonly pairs = new Map<string, Pair>();
  private readonly failed = new Set<string>();
  private timer?: NodeJS.Timeout;
  private readonly onChange = (c: CacheChange) => {
    if (c.key.startsWith(K.serviceRolesAll) || c.key.startsWith(K.services) || c.key.startsWith(K.replicas) || c.key.startsWith(K.nodes)) this.schedule();
  };
  private scheduled = false;
  private syncing = Promise.resolve();

  constructor(private readonly cache: StoreCache, private readonly host: string, private readonly log: Logger) {}

  start(): void {
    this.cache.on('change', this.onChange);
    this.schedule();
    this.timer = setInterval(() => this.schedule(), 5_000).unref(); // retry ports that were busy
  }

  async stop(): Promise<void> {
    this.cache.off('change', this.onChange);
    clearInterval(this.timer);
    await this.syncing;
    await Promise.all([...this.pairs.values()].flatMap((p) => [p.write.close(), p.read.close()]));
    this.pairs.clear();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.syncing = this.syncing.then(() => this.sync()).catch((err) => this.log.warn({ err: (err as Error).message }, 'service endpoints'));
    });
  }

  private addrOf(service: string, ordinal: number): Addr | undefined {
    const r = this.cache.get<Replica>(K.replica(service, ordinal));
    const node = r?.node ? this.cache.get<Node>(K.node(r.node)) : undefined;
    return r && node && r.spec.ports[0] ? { host: node.address, port: r.spec.ports[0].host } : undefined;
  }

  private primary(name: string): Addr | undefined {
    const roles = this.cache.get<ServiceRoles>(K.serviceRoles(name));
    return roles?.primary !== undefined && roles.phase === 'ready' ? this.addrOf(name, roles.primary) : undefined;
  }

  private readers(name: string): Addr[] {
    const roles = this.cache.get<ServiceRoles>(K.serviceRoles(name));
    const out: Addr[] = [];
    for (const r of roles?.replicas ?? []) {
      if (r.role !== 'replica') continue;
      const a = this.addrOf(name, r.ordinal);
      if (a) out.push(a);
    }
    return out;
  }

  private async sync(): Promise<void> {
    const want = new Map<string, Service>();
    for (const kv of this.cache.all(K.services)) {
      const s = JSON.parse(kv.value) as Service;
      if (managedType(s.spec.type) && s.spec.endpoints && !s.deleting) want.set(s.spec.name, s);
    }
    for (const [name, p] of this.pairs) {
      if (!want.has(name)) {
        this.pairs.delete(name);
        await Promise.all([p.write.close(), p.read.close()]);
      }
    }
    for (const [name, s] of want) {
      let p = this.pairs.get(name);
      if (!p) {
        const write = new TcpProxy(() => this.primary(name));
        const read = new TcpProxy(() => {
          const rs = this.readers(name);
          const pair = this.pairs.get(name);
          if (rs.length === 0 || !pair) return this.primary(name);
          return rs[pair.next++ % rs.length];
        });
        try {
          await write.listen(this.host, s.spec.endpoints!.write);
          await read.listen(this.host, s.spec.endpoints!.read);
        } catch (err) {
          await Promise.all([write.close(), read.close()]);
          if (!this.failed.has(name)) this.log.warn({ service: name, err: (err as Error).message }, 'cannot listen on the endpoint ports');
          this.failed.add(name);
          continue;
        }
        this.failed.delete(name);
        p = { ports: s.spec.endpoints!, write, read, next: 0 };
        this.pairs.set(name, p);
      }
      const roles = this.cache.get<ServiceRoles>(K.serviceRoles(name));
      const primary = this.primary(name);
      p.write.retarget(primary ? `${roles!.epoch}/${primary.host}:${primary.port}` : undefined);
      const readers = this.readers(name);
      p.read.retarget(readers.length || primary ? `${roles!.epoch}/${readers.map((a) => `${a.host}:${a.port}`).join(',')}` : undefined);
    }
  }
}

/**
 * Redis lifecycle hooks over RESP (ioredis). Positions are replication offsets:
 * a promoted replica keeps counting from its own, so they stay comparable.
 */
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import type { Addr, HookContext, Hooks, Probe } from '../types.js';
import { PARKED } from './config.js';

function connect(at: Addr, c: HookContext): Redis {
  return new Redis({
    host: at.host, port: at.port, password: c.credentials.password, connectTimeout: 1500, commandTimeout: 5000,
    maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, enableOfflineQueue: false,
  });
}

async function withRedis<T>(at: Addr, c: HookContext, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = connect(at, c);
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

async function probe(at: Addr, c: HookContext): Promise<Probe> {
  try {
    return await withRedis(at, c, async (r) => {
      const i = parseInfo(await r.info('replication'));
      const position = Number(i.master_repl_offset ?? 0);
      if (i.role === 'master') return { up: true, role: 'primary', position, positionText: `offset ${position}` };
      const source = { host: i.master_host, port: Number(i.master_port) };
      const parked = source.host === PARKED.host && source.port === PARKED.port;
      const linkUp = i.master_link_status === 'up';
      return {
        up: true, role: parked ? 'none' : 'replica', ...(parked ? {} : { source, linkUp }), position, positionText: `offset ${position}`,
        ...(linkUp ? { lagSeconds: Number(i.master_last_io_seconds_ago ?? 0) } : {}),
      } satisfies Probe;
    });
  } catch (err) {
    return { up: false, role: 'none', position: 0, positionText: '', error: (err as Error).message };
  }
}

export const redisHooks: Hooks = {
  probe,
  async init() {
    // Nothing to create: the password is the server's own (requirepass), the data set starts empty.
  },
  async replicate(replica, primary, c) {
    await withRedis(replica, c, async (r) => {
      await r.call('REPLICAOF', primary.host, String(primary.port));
    });
  },
  async promote(replica, c) {
    // A Redis replica applies the stream as it arrives: what it received is what it has.
    await withRedis(replica, c, async (r) => {
      await r.call('REPLICAOF', 'NO', 'ONE');
    });
  },
  async open(primary, c) {
    await withRedis(primary, c, async (r) => {
      await r.call('CONFIG', 'SET', 'min-replicas-to-write', String(c.syncReplicas));
      const i = parseInfo(await r.info('replication'));
      if (i.role !== 'master') await r.call('REPLICAOF', 'NO', 'ONE');
    });
  },
  async fence(at, c) {
    await withRedis(at, c, async (r) => {
      await r.call('REPLICAOF', PARKED.host, String(PARKED.port));
      await r.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => {});
    });
  },
  /** Every key as a RESTORE line (DUMP payloads, base64), and the offset before the scan. */
  async backup(at, c) {
    const r = connect(at, c);
    r.on('error', () => {});
    await r.connect();
    const position = parseInfo(await r.info('replication')).master_repl_offset ?? '0';
    async function* dump(): AsyncGenerator<string> {
      try {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'COUNT', 500);
          cursor = next;
          for (const k of keys) {
            const payload = await r.dumpBuffer(k);
            if (payload) yield `${Buffer.from(k).toString('base64')} ${payload.toString('base64')}\n`;
          }
        } while (cursor !== '0');
      } finally {
        r.disconnect();
      }
    }
    return { stream: Readable.from(dump()), position: `offset ${position}` };
  },
  async restore(at, c, stream) {
    await withRedis(at, c, async (r) => {
      let buf = '';
      for await (const chunk of stream) {
        buf += String(chunk);
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const [k, v] = buf.slice(0, i).split(' ');
          buf = buf.slice(i + 1);
          await r.restore(Buffer.from(k, 'base64'), 0, Buffer.from(v, 'base64'), 'REPLACE');
        }
      }
    });
  },
};

/** Creating, listing and deleting pools in the store; every write is one compare-and-swap. */
import type { Store } from '../store/store.js';
import { K } from '../model/keys.js';
import type { AddressRecord, Pool, PoolCreate, PoolView } from '../model/pool.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { sizeOf } from './address.js';
import { compilePool, overlapping, scopeText, space } from './pool-spec.js';

export async function createPool(store: Store, c: PoolCreate): Promise<Pool> {
  const pool = compilePool(c);
  for (let attempt = 0; attempt < 20; attempt++) {
    const [list, ver] = await Promise.all([store.list(K.pools), store.get(K.poolsVersion)]);
    const others = list.kvs.map((kv) => JSON.parse(kv.value) as Pool);
    if (others.some((o) => o.name === pool.name)) throw new ConflictError(`pool ${pool.name} already exists`, 'name');
    const o = overlapping(pool, others);
    if (o) throw new ConflictError(`cidr: ${pool.cidr} overlaps pool ${o.name} (${o.cidr}, ${scopeText(o)})`, 'cidr', { pool: o.name });
    // The version key makes the overlap check and the create one atomic step.
    const res = await store.txn({
      compare: [{ key: K.pool(pool.name), modRevision: 0 }, { key: K.poolsVersion, modRevision: ver?.modRevision ?? 0 }],
      success: [{ type: 'put', key: K.pool(pool.name), value: JSON.stringify(pool) }, { type: 'put', key: K.poolsVersion, value: pool.name }],
    });
    if (res.succeeded) return pool;
  }
  throw new ConflictError('pools are being changed by others; try again');
}

export function poolView(p: Pool, allocated: number): PoolView {
  return { ...p, size: sizeOf(space(p)).toString(), allocated };
}

export async function listPools(store: Store): Promise<PoolView[]> {
  const [pools, ips] = await Promise.all([store.list(K.pools), store.list(K.ips)]);
  const counts = new Map<string, number>();
  for (const kv of ips.kvs) {
    const pool = kv.key.slice(K.ips.length).split('/')[0];
    counts.set(pool, (counts.get(pool) ?? 0) + 1);
  }
  return pools.kvs.map((kv) => JSON.parse(kv.value) as Pool).map((p) => poolView(p, counts.get(p.name) ?? 0));
}

export async function getPool(store: Store, name: string): Promise<PoolView> {
  const [kv, ips] = await Promise.all([store.get(K.pool(name)), store.list(K.ipsOf(name))]);
  if (!kv) throw new NotFoundError(`pool ${name} not found`);
  return poolView(JSON.parse(kv.value) as Pool, ips.kvs.length);
}

/** Deletes an empty pool; one with allocations is a conflict that lists them (and who owns each). */
export async function deletePool(store: Store, name: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [kv, use, ver] = await Promise.all([store.get(K.pool(name)), store.get(K.poolUse(name)), store.get(K.poolsVersion)]);
    if (!kv) throw new NotFoundError(`pool ${name} not found`);
    const ips = await store.list(K.ipsOf(name));
    if (ips.kvs.length > 0) {
      const allocations = ips.kvs.map((a) => ({ ip: a.key.slice(K.ipsOf(name).length), owner: (JSON.parse(a.value) as AddressRecord).owner }));
      const shown = allocations.slice(0, 20).map((a) => `${a.ip} (${a.owner})`).join(', ');
      throw new ConflictError(
        `pool ${name} has ${allocations.length} live allocation(s): ${shown}${allocations.length > 20 ? ', …' : ''}; delete or scale down their services first`,
        'name', { allocations },
      );
    }
    // The use key changes with every allocation: none can land between the check above and this delete.
    const res = await store.txn({
      compare: [{ key: kv.key, modRevision: kv.modRevision }, { key: K.poolUse(name), modRevision: use?.modRevision ?? 0 }, { key: K.poolsVersion, modRevision: ver?.modRevision ?? 0 }],
      success: [{ type: 'delete', key: kv.key }, { type: 'delete', key: K.poolUse(name) }, { type: 'put', key: K.poolsVersion, value: `-${name}` }],
    });
    if (res.succeeded) return;
  }
  throw new ConflictError(`pool ${name} is being changed by others; try again`);
}

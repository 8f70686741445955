/** JSON helpers over the store contract: typed reads and compare-and-swap updates. */
import type { Store } from './store.js';
import { ConflictError, NotFoundError } from '../errors.js';

export async function getJson<T>(store: Store, key: string): Promise<{ value: T; modRevision: number } | undefined> {
  const kv = await store.get(key);
  return kv ? { value: JSON.parse(kv.value) as T, modRevision: kv.modRevision } : undefined;
}

export async function listJson<T>(store: Store, prefix: string): Promise<T[]> {
  const res = await store.list(prefix);
  return res.kvs.map((kv) => JSON.parse(kv.value) as T);
}

/** Creates key only if absent; ConflictError otherwise. */
export async function createJson<T>(store: Store, key: string, value: T, what: string): Promise<void> {
  const res = await store.txn({ compare: [{ key, modRevision: 0 }], success: [{ type: 'put', key, value: JSON.stringify(value) }] });
  if (!res.succeeded) throw new ConflictError(`${what} already exists`);
}

/**
 * Read-modify-write with compare-and-swap, retried on conflict, so concurrent
 * updates serialize: the final value is the last writer's whole change.
 */
export async function updateJson<T>(store: Store, key: string, what: string, fn: (cur: T) => T): Promise<T> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const cur = await getJson<T>(store, key);
    if (!cur) throw new NotFoundError(`${what} not found`);
    const next = fn(cur.value);
    const res = await store.txn({
      compare: [{ key, modRevision: cur.modRevision }],
      success: [{ type: 'put', key, value: JSON.stringify(next) }],
    });
    if (res.succeeded) return next;
  }
  throw new ConflictError(`${what} is being changed by others; try again`);
}

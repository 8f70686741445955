/**
 * A Store wrapper that counts every operation, its latency and its failures
 * (kiver_store_*), so a slow or failing store shows on /metrics and in alerts.
 * Not-found is an answer, not a failure (e.g. keepAlive of an expired lease).
 */
import { NotFoundError } from '../errors.js';
import { metrics } from '../metrics.js';
import type { Store } from './store.js';

const OPS = ['get', 'list', 'put', 'delete', 'txn', 'watch', 'grantLease', 'keepAlive', 'revokeLease', 'revision'] as const;

export function instrumentStore(store: Store): Store {
  const out: Store = Object.create(store);
  for (const op of OPS) {
    const fn = (store[op] as (...a: unknown[]) => Promise<unknown>).bind(store);
    (out as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
      metrics.storeOps.inc({ op });
      const end = metrics.storeSeconds.startTimer({ op });
      try {
        return await fn(...args);
      } catch (err) {
        if (!(err instanceof NotFoundError)) metrics.storeErrors.inc({ op });
        throw err;
      } finally {
        end();
      }
    };
  }
  out.close = () => store.close();
  return out;
}

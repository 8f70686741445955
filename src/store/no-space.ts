/**
 * A full disk under the store: every write fails the same way, so it is one
 * episode — logged once when it starts and once when writes work again, counted
 * in metrics, and answered 507 `store: no space left on device` (not 500 with a
 * warning every second).
 */
import { NoSpaceError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { metrics } from '../metrics.js';

export const NO_SPACE_MESSAGE = 'store: no space left on device';

/** SQLite's SQLITE_FULL, the OS's ENOSPC, etcd's "database space exceeded" (its quota alarm). */
export function isNoSpace(err: unknown): boolean {
  if (err instanceof NoSpaceError) return true;
  const e = err as { code?: unknown; message?: unknown; details?: unknown } | undefined;
  const code = String(e?.code ?? '');
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code.startsWith('SQLITE_IOERR_WRITE')) return true;
  return /no space left on device|database space exceeded|database or disk is full/i.test(`${String(e?.message ?? '')} ${String(e?.details ?? '')}`);
}

class StoreSpace {
  log: Logger = createLogger('kiver-store');
  private full = false;

  /** Records a failed write; returns the error to throw. */
  failed(err: unknown): NoSpaceError {
    metrics.storeNoSpaceErrors.inc();
    if (!this.full) {
      this.full = true;
      metrics.storeNoSpace.set(1);
      this.log.error({ err: (err as Error)?.message }, `${NO_SPACE_MESSAGE}: writes fail until space is freed (logged once per episode; see kiver_store_no_space)`);
    }
    return err instanceof NoSpaceError ? err : new NoSpaceError(NO_SPACE_MESSAGE);
  }

  /** A write went through: ends an episode. */
  ok(): void {
    if (!this.full) return;
    this.full = false;
    metrics.storeNoSpace.set(0);
    this.log.info('store: writes succeed again (disk space freed)');
  }

  /** Runs a store write, turning a full disk into NoSpaceError. */
  guard<T>(fn: () => T): T {
    let r: T;
    try {
      r = fn();
    } catch (err) {
      if (isNoSpace(err)) throw this.failed(err);
      throw err;
    }
    this.ok();
    return r;
  }
}

export const storeSpace = new StoreSpace();

/**
 * Leader election with a store that stops answering one of the candidates (a server cut
 * off from etcd). The store is the real SQLite store; only the cut is simulated, by
 * holding that candidate's calls until it heals (no etcd is needed for this logic).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { LeaderElection } from './leader.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { createLogger } from '../log.js';

/** The same store, but every call waits while `cut` (as calls hang on a partition). */
function cuttable(store: Store) {
  let cut = false;
  const waiting: (() => void)[] = [];
  const proxy = new Proxy(store, {
    get(target, prop) {
      const v = (target as unknown as Record<string | symbol, unknown>)[prop];
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        while (cut) await new Promise<void>((r) => waiting.push(r));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, cut: () => (cut = true), heal: () => { cut = false; waiting.splice(0).forEach((r) => r()); } };
}

async function withStore(fn: (store: SqliteStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kiver-leader-unit-'));
  const store = SqliteStore.open(join(dir, 'kiver.db'));
  const keep = setInterval(() => {}, 1000); // the election's timers are unref'd
  try {
    await fn(store);
  } finally {
    clearInterval(keep);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const log = createLogger('test', 'silent');

describe('leader election when the store goes away', () => {
  it('a leader cut off from its store steps down within 3 s; another takes over; the old fence fails', () => withStore(async (store) => {
    const c = cuttable(store);
    const a = new LeaderElection(c.store, { id: 'a', url: 'http://a' }, log, { ttlSeconds: 2 });
    const b = new LeaderElection(store, { id: 'b', url: 'http://b' }, log, { ttlSeconds: 2 });
    try {
      await a.start();
      await b.start();
      assert.equal(a.isLeader, true);
      const fence = a.fence()!;
      const t0 = performance.now();
      c.cut();
      await once(a, 'deposed');
      const stepped = performance.now() - t0;
      assert.ok(stepped < 3000, `stepped down after ${Math.round(stepped)} ms`);
      if (!b.isLeader) await once(b, 'elected');
      const took = performance.now() - t0;
      assert.ok(took < 4000, `b leads ${Math.round(took)} ms after the cut`);
      const res = await store.txn({ compare: [fence], success: [{ type: 'put', key: '/kiver/x', value: 'a' }] });
      assert.equal(res.succeeded, false, "the deposed leader's write is fenced off");
      c.heal();
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(a.isLeader, false, 'healed, a follows');
      assert.equal((await b.leader())?.id, 'b');
    } finally {
      c.heal();
      await a.stop();
      await b.stop();
    }
  }));

  it('a pause shorter than the lease resumes with the same fence instead of handing over', () => withStore(async (store) => {
    const c = cuttable(store);
    const a = new LeaderElection(c.store, { id: 'a', url: 'http://a' }, log, { ttlSeconds: 4, renewMs: 100 });
    const b = new LeaderElection(store, { id: 'b', url: 'http://b' }, log, { ttlSeconds: 4, renewMs: 100 });
    try {
      await a.start();
      await b.start();
      const fence = a.fence()!;
      c.cut();
      await once(a, 'deposed');
      c.heal();
      await once(a, 'elected');
      assert.deepEqual(a.fence(), fence, 'same fence');
      assert.equal(b.isLeader, false);
      const res = await store.txn({ compare: [fence], success: [{ type: 'put', key: '/kiver/x', value: 'a' }] });
      assert.equal(res.succeeded, true);
    } finally {
      await a.stop();
      await b.stop();
    }
  }));
});

/**
 * The store contract as tests: every backend runs exactly this suite (DESIGN.md principle 2),
 * so code above the store may rely on what is asserted here and on nothing else.
 *
 * Each test works under its own random key prefix, so a shared backend (one etcd cluster
 * for the whole file) gives each test an empty namespace; a backend that makes a fresh
 * store per test works the same. Tests run one after another, so "one revision per write"
 * is asserted exactly. Waiting is always polling with a deadline, never a bare sleep.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CompactedError, InputError, NotFoundError } from '../errors.js';
import type { KeyValue, Store, Watch, WatchEvent } from './store.js';

export interface StoreFactory {
  /** A store to test against; each test takes one and closes it. */
  create(): Promise<Store>;
  /** Runs once after the suite: remove temp files, stop servers. */
  cleanup?(): Promise<void>;
  /** Drops history up to `revision`. When given, compaction is part of the contract run. */
  compact?(store: Store, revision: number): Promise<void>;
}

/** Polls cond every 20 ms until it holds; fails with `what` after the deadline. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Recorder {
  batches: Array<{ revision: number; events: WatchEvent[] }>;
  errors: Error[];
  watch: Watch;
  /** Highest revision delivered so far (afterRevision until the first batch). */
  last(): number;
  events(): WatchEvent[];
}

async function record(
  store: Store,
  prefix: string,
  afterRevision: number,
  onBatch?: (events: WatchEvent[], revision: number) => void,
): Promise<Recorder> {
  const batches: Recorder['batches'] = [];
  const errors: Error[] = [];
  const watch = await store.watch(prefix, {
    afterRevision,
    onEvents: (events, revision) => {
      batches.push({ revision, events });
      onBatch?.(events, revision);
    },
    onError: (err) => errors.push(err),
  });
  return {
    batches,
    errors,
    watch,
    last: () => (batches.length ? batches[batches.length - 1].revision : afterRevision),
    events: () => batches.flatMap((b) => b.events),
  };
}

/** etcd orders keys by their bytes; so must every backend. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function pick(kv: KeyValue | undefined) {
  return kv && { value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version };
}

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    after(async () => {
      await factory.cleanup?.();
    });

    /** Each test: a store from the factory and a prefix nobody else uses. */
    async function withStore(fn: (s: Store, p: string) => Promise<void>): Promise<void> {
      const s = await factory.create();
      try {
        await fn(s, `/contract/${randomUUID()}/`);
      } finally {
        await s.close();
      }
    }

    it('put and get: one global revision per write, create/mod revision, version', () =>
      withStore(async (s, p) => {
        assert.equal(await s.get(`${p}a`), undefined);
        const r0 = await s.revision();
        const r1 = await s.put(`${p}a`, 'one');
        assert.equal(r1, r0 + 1);
        assert.equal(await s.revision(), r1);
        assert.deepEqual(await s.get(`${p}a`), {
          key: `${p}a`, value: 'one', createRevision: r1, modRevision: r1, version: 1, lease: 0,
        });
        const r2 = await s.put(`${p}a`, 'two');
        assert.equal(r2, r1 + 1);
        assert.deepEqual(pick(await s.get(`${p}a`)), { value: 'two', createRevision: r1, modRevision: r2, version: 2 });
        const r3 = await s.put(`${p}b`, '');
        assert.equal(r3, r2 + 1, 'writes to different keys share one revision counter');
        assert.deepEqual(pick(await s.get(`${p}b`)), { value: '', createRevision: r3, modRevision: r3, version: 1 });
        await assert.rejects(s.put('', 'x'), InputError, 'the empty key is not a key');
      }));

    it('delete: reports existence; only a real delete bumps the revision; re-create starts over', () =>
      withStore(async (s, p) => {
        const r1 = await s.put(`${p}a`, '1');
        await s.put(`${p}a`, '2');
        assert.equal(await s.delete(`${p}a`), true);
        const r3 = await s.revision();
        assert.equal(r3, r1 + 2);
        assert.equal(await s.get(`${p}a`), undefined);
        assert.equal(await s.delete(`${p}a`), false);
        assert.equal(await s.delete(`${p}never`), false);
        assert.equal(await s.revision(), r3, 'deleting nothing writes nothing');
        const r4 = await s.put(`${p}a`, '3');
        assert.deepEqual(pick(await s.get(`${p}a`)), { value: '3', createRevision: r4, modRevision: r4, version: 1 });
      }));

    it('list: exactly the prefix, sorted by key bytes, with limit and the snapshot revision', () =>
      withStore(async (s, p) => {
        const names = ['b', 'a', 'a/x', 'ä', 'z', '\u{1F600}', '\uFFFD', 'B', 'a0'];
        for (const n of names) await s.put(`${p}${n}`, `v-${n}`);
        await s.put(`${p.slice(0, -1)}0`, 'sibling prefix'); // "/contract/<id>0" is not under "/contract/<id>/"
        await s.put(p.slice(0, -1), 'the prefix without its slash');
        const res = await s.list(p);
        const want = names.map((n) => `${p}${n}`).sort(byteOrder);
        assert.deepEqual(res.kvs.map((kv) => kv.key), want);
        assert.deepEqual(res.kvs.map((kv) => kv.value), want.map((k) => `v-${k.slice(p.length)}`));
        assert.equal(res.revision, await s.revision());
        for (const kv of res.kvs) assert.ok(kv.modRevision <= res.revision);

        const two = await s.list(p, { limit: 2 });
        assert.deepEqual(two.kvs.map((kv) => kv.key), want.slice(0, 2));
        assert.deepEqual((await s.list(`${p}a`)).kvs.map((kv) => kv.key), [`${p}a`, `${p}a/x`, `${p}a0`]);
        const none = await s.list(`${p}nothing/`);
        assert.deepEqual(none.kvs, []);
        assert.equal(none.revision, res.revision);
      }));

    it('txn: compare-and-swap on modRevision, failure branch, no write on a failed bare compare', () =>
      withStore(async (s, p) => {
        const r1 = await s.put(`${p}a`, '1');
        const ok = await s.txn({
          compare: [{ key: `${p}a`, modRevision: r1 }],
          success: [{ type: 'put', key: `${p}a`, value: '2' }, { type: 'put', key: `${p}b`, value: 'b' }],
          failure: [{ type: 'put', key: `${p}c`, value: 'lost' }],
        });
        assert.deepEqual(ok, { succeeded: true, revision: r1 + 1 });
        assert.deepEqual(pick(await s.get(`${p}a`)), { value: '2', createRevision: r1, modRevision: r1 + 1, version: 2 });
        assert.equal((await s.get(`${p}b`))?.modRevision, r1 + 1, 'all ops of a txn share its one revision');
        assert.equal(await s.get(`${p}c`), undefined);

        const stale = await s.txn({
          compare: [{ key: `${p}a`, modRevision: r1 }],
          success: [{ type: 'put', key: `${p}a`, value: '3' }],
          failure: [{ type: 'put', key: `${p}c`, value: 'lost' }],
        });
        assert.deepEqual(stale, { succeeded: false, revision: r1 + 2 });
        assert.equal((await s.get(`${p}a`))?.value, '2');
        assert.equal((await s.get(`${p}c`))?.value, 'lost');

        const bare = await s.txn({ compare: [{ key: `${p}a`, modRevision: r1 }], success: [{ type: 'delete', key: `${p}a` }] });
        assert.deepEqual(bare, { succeeded: false, revision: r1 + 2 }, 'nothing written, revision unchanged');
      }));

    it('txn: modRevision 0 means the key is absent (create only)', () =>
      withStore(async (s, p) => {
        const create = { compare: [{ key: `${p}k`, modRevision: 0 }], success: [{ type: 'put' as const, key: `${p}k`, value: 'first' }] };
        assert.equal((await s.txn(create)).succeeded, true);
        assert.equal((await s.txn({ ...create, success: [{ type: 'put', key: `${p}k`, value: 'second' }] })).succeeded, false);
        assert.equal((await s.get(`${p}k`))?.value, 'first');
        await s.delete(`${p}k`);
        assert.equal((await s.txn(create)).succeeded, true, 'absent again after delete');
      }));

    it('txn: all or nothing across keys, also when an op is rejected', () =>
      withStore(async (s, p) => {
        const ra = await s.put(`${p}a`, 'a1');
        const rb = await s.put(`${p}b`, 'b1');
        await s.put(`${p}d/1`, 'd1');
        await s.put(`${p}d/2`, 'd2');
        const before = await s.list(p);
        const lost = await s.txn({
          compare: [{ key: `${p}a`, modRevision: ra }, { key: `${p}b`, modRevision: rb - 1 }],
          success: [{ type: 'put', key: `${p}a`, value: 'a2' }, { type: 'put', key: `${p}c`, value: 'c' }],
        });
        assert.equal(lost.succeeded, false);
        assert.deepEqual(await s.list(p), before, 'one failed compare: nothing applied');

        await assert.rejects(
          s.txn({
            compare: [],
            success: [{ type: 'put', key: `${p}a`, value: 'a3' }, { type: 'put', key: `${p}x`, value: 'x', lease: 987654321 }],
          }),
          NotFoundError,
        );
        assert.deepEqual(await s.list(p), before, 'a rejected op: nothing applied, revision unchanged');

        const res = await s.txn({
          compare: [{ key: `${p}a`, modRevision: ra }],
          success: [
            { type: 'put', key: `${p}x`, value: 'x' },
            { type: 'delete', key: `${p}b` },
            { type: 'deletePrefix', prefix: `${p}d/` },
          ],
        });
        assert.deepEqual(res, { succeeded: true, revision: before.revision + 1 });
        const after = await s.list(p);
        assert.deepEqual(after.kvs.map((kv) => [kv.key, kv.modRevision]), [[`${p}a`, ra], [`${p}x`, res.revision]]);
      }));

    it('txn: a key may be written once per branch (as etcd requires)', () =>
      withStore(async (s, p) => {
        const r0 = await s.revision();
        await assert.rejects(
          s.txn({ compare: [], success: [{ type: 'put', key: `${p}a`, value: '1' }, { type: 'put', key: `${p}a`, value: '2' }] }),
          InputError,
        );
        await assert.rejects(
          s.txn({ compare: [], success: [{ type: 'put', key: `${p}a`, value: '1' }, { type: 'delete', key: `${p}a` }] }),
          InputError,
        );
        await assert.rejects(
          s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: p }, { type: 'put', key: `${p}a`, value: '1' }] }),
          InputError,
        );
        assert.equal(await s.revision(), r0);
        assert.equal(await s.get(`${p}a`), undefined);
      }));

    it('concurrent compare-and-swap on one revision has exactly one winner', () =>
      withStore(async (s, p) => {
        const r = await s.put(`${p}k`, 'start');
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            s.txn({ compare: [{ key: `${p}k`, modRevision: r }], success: [{ type: 'put', key: `${p}k`, value: `w${i}` }] }),
          ),
        );
        const winners = results.flatMap((res, i) => (res.succeeded ? [i] : []));
        assert.equal(winners.length, 1, `winners: ${winners.join(',')}`);
        const kv = await s.get(`${p}k`);
        assert.equal(kv?.value, `w${winners[0]}`);
        assert.equal(kv?.version, 2);
        assert.equal(kv?.modRevision, results[winners[0]].revision);
      }));

    it('concurrent read-modify-write loops lose no update', () =>
      withStore(async (s, p) => {
        await s.put(`${p}n`, '0');
        const increment = async () => {
          for (;;) {
            const kv = (await s.get(`${p}n`))!;
            const res = await s.txn({
              compare: [{ key: kv.key, modRevision: kv.modRevision }],
              success: [{ type: 'put', key: kv.key, value: String(Number(kv.value) + 1) }],
            });
            if (res.succeeded) return;
          }
        };
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 5; i++) await increment();
        }));
        const kv = await s.get(`${p}n`);
        assert.equal(kv?.value, '40');
        assert.equal(kv?.version, 41);
      }));

    it('deletePrefix removes exactly the prefix, in one revision; matching nothing writes nothing', () =>
      withStore(async (s, p) => {
        for (const k of ['d/1', 'd/2', 'd/sub/3', 'd', 'd0', 'e/1']) await s.put(`${p}${k}`, k);
        const r0 = await s.revision();
        const res = await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `${p}d/` }] });
        assert.deepEqual(res, { succeeded: true, revision: r0 + 1 });
        assert.deepEqual((await s.list(p)).kvs.map((kv) => kv.key), [`${p}d`, `${p}d0`, `${p}e/1`]);
        const none = await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `${p}d/` }] });
        assert.deepEqual(none, { succeeded: true, revision: r0 + 1 });
      }));

    it('watch: replays history after a revision, one callback per revision, ops in order, prefix only', () =>
      withStore(async (s, p) => {
        const r0 = await s.revision();
        const r1 = await s.put(`${p}w/a`, '1');
        const t = await s.txn({
          compare: [],
          success: [
            { type: 'put', key: `${p}w/b`, value: 'b' },
            { type: 'put', key: `${p}w/c`, value: 'c' },
            { type: 'put', key: `${p}w/a`, value: '2' },
          ],
        });
        await s.put(`${p}other`, 'not watched');
        await s.put(`${p}w`, 'not under w/ either');
        await s.delete(`${p}w/b`);
        const r5 = await s.revision();

        const rec = await record(s, `${p}w/`, r0);
        await waitFor(() => rec.last() >= r5, 'the replayed history');
        assert.deepEqual(rec.errors, []);
        assert.deepEqual(rec.batches.map((b) => b.revision), [r1, t.revision, r5]);
        const [first, second, third] = rec.batches;
        assert.deepEqual(first.events, [{ type: 'put', kv: { key: `${p}w/a`, value: '1', createRevision: r1, modRevision: r1, version: 1, lease: 0 } }]);
        assert.deepEqual(second.events.map((e) => [e.type, e.kv.key, e.kv.value, e.kv.modRevision]), [
          ['put', `${p}w/b`, 'b', t.revision],
          ['put', `${p}w/c`, 'c', t.revision],
          ['put', `${p}w/a`, '2', t.revision],
        ]);
        assert.deepEqual(pick(second.events[2].prevKv), { value: '1', createRevision: r1, modRevision: r1, version: 1 });
        assert.deepEqual(third.events.map((e) => [e.type, e.kv.key]), [['delete', `${p}w/b`]]);

        // From the middle: only what came after.
        const mid = await record(s, `${p}w/`, t.revision);
        await waitFor(() => mid.last() >= r5, 'the tail of the history');
        assert.deepEqual(mid.batches.map((b) => b.revision), [r5]);
        await rec.watch.cancel();
        await mid.watch.cancel();
      }));

    it('watch: delete events carry the deleting revision and the previous state', () =>
      withStore(async (s, p) => {
        const ra = await s.put(`${p}a`, 'va');
        await s.put(`${p}b/1`, 'v1');
        const rb2 = await s.put(`${p}b/2`, 'v2');
        const rb2b = await s.put(`${p}b/2`, 'v2b');
        const rec = await record(s, p, await s.revision());
        await s.delete(`${p}a`);
        const dp = await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `${p}b/` }] });
        await waitFor(() => rec.last() >= dp.revision, 'the delete events');
        const [del, prefixDel] = rec.batches;
        assert.equal(del.events.length, 1);
        assert.deepEqual(del.events[0], {
          type: 'delete',
          kv: { key: `${p}a`, value: '', createRevision: 0, modRevision: del.revision, version: 0, lease: 0 },
          prevKv: { key: `${p}a`, value: 'va', createRevision: ra, modRevision: ra, version: 1, lease: 0 },
        });
        assert.equal(prefixDel.revision, dp.revision);
        assert.deepEqual(
          prefixDel.events.map((e) => [e.type, e.kv.key, e.kv.modRevision, e.prevKv?.value, e.prevKv?.version]),
          [
            ['delete', `${p}b/1`, dp.revision, 'v1', 1],
            ['delete', `${p}b/2`, dp.revision, 'v2b', 2],
          ],
        );
        assert.equal(prefixDel.events[1].prevKv?.createRevision, rb2);
        assert.equal(prefixDel.events[1].prevKv?.modRevision, rb2b);
        await rec.watch.cancel();
      }));

    it('watch: concurrent writers, cancel, resume from the last revision seen — every change exactly once, in order', () =>
      withStore(async (s, p) => {
        const r0 = await s.revision();
        let cancelled = false;
        let lateCallbacks = 0;
        let cancelling: Promise<void> | undefined;
        const first: Recorder = await record(s, p, r0, () => {
          if (cancelled) lateCallbacks++;
          if (!cancelling && first.events().length >= 60) {
            cancelling = first.watch.cancel().then(() => {
              cancelled = true;
            });
          }
        });
        // 150 writes in flight at once: single puts and two-key txns over 10 keys.
        const written = new Map<number, Array<[string, string]>>();
        await Promise.all(
          Array.from({ length: 150 }, async (_, i) => {
            const k1 = `${p}k${i % 10}`;
            const k2 = `${p}k${(i + 3) % 10}`;
            if (i % 3 === 0) {
              const res = await s.txn({
                compare: [],
                success: [{ type: 'put', key: k1, value: `t${i}` }, { type: 'put', key: k2, value: `t${i}` }],
              });
              written.set(res.revision, [[k1, `t${i}`], [k2, `t${i}`]]);
            } else {
              written.set(await s.put(k1, `p${i}`), [[k1, `p${i}`]]);
            }
          }),
        );
        const dp = await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: p }] });
        written.set(dp.revision, Array.from({ length: 10 }, (_, i): [string, string] => [`${p}k${i}`, '']));
        const all = [...written.keys()].sort((a, b) => a - b);
        assert.equal(all.length, 151, 'every write got its own revision');

        await waitFor(() => cancelled, 'the first watch to be cancelled mid-stream');
        const resumeFrom = first.last();
        assert.ok(resumeFrom < dp.revision, 'cancelled before the end');
        const second = await record(s, p, resumeFrom);
        await waitFor(() => second.last() >= dp.revision, 'the resumed watch to catch up');

        const seen = [...first.batches, ...second.batches];
        assert.deepEqual(seen.map((b) => b.revision), all, 'union of both watches = full history, no gap, no duplicate');
        for (const b of seen) {
          assert.deepEqual(
            b.events.map((e) => [e.kv.key, e.kv.value]).sort(),
            [...written.get(b.revision)!].sort(),
            `events of revision ${b.revision}`,
          );
          for (const e of b.events) assert.equal(e.kv.modRevision, b.revision);
        }
        assert.equal(lateCallbacks, 0, 'no callback after cancel() resolved');
        assert.deepEqual([...first.errors, ...second.errors], []);
        await second.watch.cancel();
      }));

    it('watch: callbacks never run inside a write, and may write themselves', () =>
      withStore(async (s, p) => {
        let writing = false;
        let reentrant = 0;
        const rec = await record(s, p, await s.revision(), (events) => {
          if (writing) reentrant++;
          for (const e of events) if (e.kv.key === `${p}ping`) void s.put(`${p}pong`, 'from the callback');
        });
        writing = true;
        const pending = s.put(`${p}ping`, '1');
        writing = false;
        await pending;
        await waitFor(() => rec.events().some((e) => e.kv.key === `${p}pong`), 'the write made by the callback');
        assert.equal(reentrant, 0);
        await rec.watch.cancel();
      }));

    it('leases: expiry deletes the leased keys, with delete events; the lease is then gone', () =>
      withStore(async (s, p) => {
        const lease = await s.grantLease(1);
        assert.ok(Number.isSafeInteger(lease) && lease > 0, `lease id ${lease}`);
        await s.put(`${p}l1`, 'x', { lease });
        await s.txn({ compare: [], success: [{ type: 'put', key: `${p}l2`, value: 'y', lease }] });
        await s.put(`${p}keep`, 'no lease');
        assert.equal((await s.get(`${p}l1`))?.lease, lease);
        const rec = await record(s, p, await s.revision());
        await waitFor(async () => (await s.get(`${p}l1`)) === undefined, 'the lease to expire', 15_000);
        assert.equal(await s.get(`${p}l2`), undefined);
        assert.equal((await s.get(`${p}keep`))?.value, 'no lease');
        await waitFor(() => rec.events().length >= 2, 'the delete events of the expiry');
        const dels = rec.events();
        assert.deepEqual(dels.map((e) => [e.type, e.kv.key, e.prevKv?.lease]).sort(), [
          ['delete', `${p}l1`, lease],
          ['delete', `${p}l2`, lease],
        ]);
        await assert.rejects(s.keepAlive(lease), NotFoundError, 'keepAlive of an expired lease');
        await assert.rejects(s.put(`${p}late`, 'z', { lease }), NotFoundError);
        await rec.watch.cancel();
      }));

    it('leases: keepAlive keeps keys past the ttl; revoke deletes them at once', () =>
      withStore(async (s, p) => {
        const lease = await s.grantLease(1);
        const ttl = await s.keepAlive(lease);
        assert.ok(ttl >= 1, `ttl ${ttl}`);
        await s.put(`${p}k`, 'v', { lease });
        // Renew well inside the ttl for longer than the ttl: the key must stay throughout.
        const until = Date.now() + ttl * 1000 + 1000;
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, 200));
          assert.equal(await s.keepAlive(lease), ttl);
          assert.equal((await s.get(`${p}k`))?.value, 'v', 'key kept while the lease is renewed');
        }
        await s.revokeLease(lease);
        assert.equal(await s.get(`${p}k`), undefined, 'revoke deletes the keys before it returns');
        await assert.rejects(s.keepAlive(lease), NotFoundError);
        await assert.rejects(s.revokeLease(lease), NotFoundError);
      }));

    it('leases: unknown lease ids are rejected and write nothing', () =>
      withStore(async (s, p) => {
        const r0 = await s.revision();
        const unknown = 424242424242;
        await assert.rejects(s.put(`${p}k`, 'v', { lease: unknown }), NotFoundError);
        await assert.rejects(s.keepAlive(unknown), NotFoundError);
        await assert.rejects(s.revokeLease(unknown), NotFoundError);
        await assert.rejects(s.grantLease(0), InputError);
        assert.equal(await s.revision(), r0);
        assert.equal(await s.get(`${p}k`), undefined);
      }));

    it('compaction: a watch from a compacted revision fails with CompactedError', {
      skip: factory.compact ? false : 'this backend offers no compaction hook',
    }, () =>
      withStore(async (s, p) => {
        const revs: number[] = [];
        for (let i = 0; i < 5; i++) revs.push(await s.put(`${p}k`, String(i)));
        await factory.compact!(s, revs[2]);
        const old = await record(s, p, revs[0]);
        await waitFor(() => old.errors.length > 0, 'the compaction error');
        assert.ok(old.errors[0] instanceof CompactedError, `got ${old.errors[0]}`);
        assert.equal((old.errors[0] as CompactedError).compactRevision, revs[2]);
        assert.deepEqual(old.batches, []);
        await old.watch.cancel();

        const kept = await record(s, p, revs[2]);
        await waitFor(() => kept.last() >= revs[4], 'the history kept after compaction');
        assert.deepEqual(kept.batches.map((b) => b.revision), revs.slice(3));
        assert.deepEqual(kept.errors, []);
        await kept.watch.cancel();
      }));
  });
}

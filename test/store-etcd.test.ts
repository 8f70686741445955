/**
 * The store contract on a real 3-member etcd cluster, plus failover: kill -9 of the
 * leader mid-suite, then writes, reads and a running watch must carry on; and on the
 * healthy cluster, no call may stall under concurrent keepAlive/get/txn/watch load.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { storeContract, waitFor } from '../src/store/contract.js';
import { EtcdStore } from '../src/store/etcd.js';
import { openStore } from '../src/store/open.js';
import { UnavailableError } from '../src/errors.js';
import type { WatchEvent } from '../src/store/store.js';
import { EtcdCluster } from './harness/etcd-cluster.js';

const cluster = await EtcdCluster.start({ members: 3 });
after(() => cluster.stop());

storeContract('etcd (3 members)', {
  create: () => EtcdStore.open({ endpoints: cluster.endpoints }),
  compact: (s, revision) => (s as EtcdStore).compact(revision),
});

describe('etcd store', () => {
  it('openStore takes etcd:// URLs; an unreachable cluster is UnavailableError', async () => {
    const url = `etcd://${cluster.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
    const s = await openStore(url);
    const p = `/open/${randomUUID()}/`;
    const rev = await s.put(`${p}k`, 'v');
    assert.equal((await s.get(`${p}k`))?.modRevision, rev);
    await s.close();
    await assert.rejects(
      EtcdStore.open({ endpoints: ['http://127.0.0.1:1'], callTimeoutMs: 200, retryWindowMs: 500 }),
      UnavailableError,
    );
  });

  it('TLS: ca/cert/key from the store URL; a client without a certificate is refused', async () => {
    const secure = await EtcdCluster.start({ members: 1, tls: true });
    try {
      const tls = secure.clientTls!;
      const host = secure.endpoints[0].replace('https://', '');
      const s = await openStore(`etcd://${host}?ca=${tls.ca}&cert=${tls.cert}&key=${tls.key}`);
      const rev = await s.put('/tls/k', 'v');
      assert.equal((await s.get('/tls/k'))?.modRevision, rev);
      await s.close();
      await assert.rejects(
        EtcdStore.open({ endpoints: secure.endpoints, tls: { ca: tls.ca }, callTimeoutMs: 500, retryWindowMs: 1500 }),
        UnavailableError,
      );
    } finally {
      await secure.stop();
    }
  });

  it('healthy cluster: concurrent keepAlive/get/txn and watch churn never stall a call', async (t) => {
    // Regression: every keepAlive used to cancel() its still-writable stream; etcd3 took
    // the CANCELLED for a host failure (reset all of the host's connections, open its
    // breaker for 500 ms), and concurrent calls waited out open breakers for 1–5 s.
    const s = await EtcdStore.open({ endpoints: cluster.endpoints });
    const p = `/stall/${randomUUID()}/`;
    const loops = 4;
    const leases = await Promise.all(Array.from({ length: loops }, () => s.grantLease(30)));
    const watched: number[] = [];
    const watchErrors: Error[] = [];
    const running = await s.watch(p, {
      afterRevision: await s.revision(),
      onEvents: (_events, revision) => watched.push(revision),
      onError: (err) => watchErrors.push(err),
    });
    const lat: Record<string, number[]> = { keepAlive: [], get: [], txn: [], watch: [] };
    const slow: string[] = [];
    const runFor = 4_000;
    const end = performance.now() + runFor;
    const timed = async (what: string, fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      const ms = performance.now() - t0;
      lat[what].push(ms);
      if (ms > 1_000) slow.push(`${what} ${ms.toFixed(0)} ms`);
    };
    const loop = async (what: string, fn: () => Promise<unknown>) => {
      while (performance.now() < end) await timed(what, fn);
    };
    let lastTxn = 0;
    await Promise.all([
      ...leases.map((lease) => loop('keepAlive', async () => assert.ok((await s.keepAlive(lease)) > 0))),
      ...leases.map((_, i) => loop('get', () => s.get(`${p}${i}`))),
      ...leases.map((_, i) =>
        loop('txn', async () => {
          const key = `${p}${i}`;
          const kv = await s.get(key);
          const r = await s.txn({
            compare: [{ key, modRevision: kv?.modRevision ?? 0 }],
            success: [{ type: 'put', key, value: String(performance.now()) }],
          });
          assert.equal(r.succeeded, true, 'nobody else writes this key');
          lastTxn = Math.max(lastTxn, r.revision);
        }),
      ),
      // Watches opened and cancelled all along: a cancel must not count against a host either.
      loop('watch', async () => {
        const w = await s.watch(p, { afterRevision: await s.revision(), onEvents: () => {}, onError: () => {} });
        await w.cancel();
      }),
    ]);
    await waitFor(() => watched.at(-1) === lastTxn, 'the running watch to see the last txn');
    await running.cancel();
    await Promise.all(leases.map((l) => s.revokeLease(l)));
    await s.close();

    const all = Object.values(lat).flat().sort((a, b) => a - b);
    const p99 = all[Math.floor(all.length * 0.99)];
    t.diagnostic(
      `${all.length} calls in ${runFor} ms: ` +
        Object.entries(lat)
          .map(([w, a]) => `${w} ${a.length} (max ${Math.max(...a).toFixed(0)} ms)`)
          .join(', ') +
        `; p99 ${p99.toFixed(0)} ms, max ${all.at(-1)!.toFixed(0)} ms`,
    );
    assert.deepEqual(slow, [], 'no call may take more than 1 s on a healthy cluster');
    assert.deepEqual(watchErrors, []);
    for (const [what, a] of Object.entries(lat)) assert.ok(a.length >= 20, `only ${a.length} ${what} calls in ${runFor} ms`);
  });

  it('kill -9 of the leader: writes resume, and running watches miss nothing', async (t) => {
    const s = await EtcdStore.open({ endpoints: cluster.endpoints });
    const p = `/failover/${randomUUID()}/`;
    const r0 = await s.revision();
    const watchOn = async (store: EtcdStore) => {
      const rec = { seen: [] as Array<{ revision: number; events: WatchEvent[] }>, errors: [] as Error[] };
      const w = await store.watch(p, {
        afterRevision: r0,
        onEvents: (events, revision) => rec.seen.push({ revision, events }),
        onError: (err) => rec.errors.push(err),
      });
      return { ...rec, w };
    };
    const leader = await cluster.leader();
    // One watch through the client's own host choice; one pinned to the leader, whose
    // stream is certain to break and must resume where it stopped once the member is back.
    const any = await watchOn(s);
    const pinnedStore = await EtcdStore.open({ endpoints: [cluster.endpoints[leader]] });
    const pinned = await watchOn(pinnedStore);
    const written: number[] = [];
    for (let i = 0; i < 20; i++) written.push(await s.put(`${p}before/${i}`, String(i)));
    await waitFor(() => pinned.seen.length === 20, 'the pinned watch to see the first writes');

    const killedAt = performance.now();
    await cluster.kill(leader, 'SIGKILL');
    // put retries through the failover on its own; this measures how long that takes.
    written.push(await s.put(`${p}first-after`, 'x'));
    const firstWriteMs = performance.now() - killedAt;
    for (let i = 0; i < 20; i++) written.push(await s.put(`${p}after/${i}`, String(i)));
    const kv = (await s.get(`${p}first-after`))!;
    const cas = await s.txn({
      compare: [{ key: kv.key, modRevision: kv.modRevision }],
      success: [{ type: 'put', key: kv.key, value: 'y' }],
    });
    assert.equal(cas.succeeded, true);
    written.push(cas.revision);
    assert.equal((await s.list(p)).kvs.length, 41);

    await waitFor(() => any.seen.at(-1)?.revision === cas.revision, 'the watch to see every write', 20_000);
    assert.deepEqual(any.errors, []);
    assert.deepEqual(any.seen.map((b) => b.revision), written, 'no gap and no duplicate across the failover');
    const newLeader = await cluster.leader();
    assert.notEqual(newLeader, leader);

    const restartAt = performance.now();
    await cluster.restart(leader);
    await waitFor(() => pinned.seen.at(-1)?.revision === cas.revision, 'the pinned watch to resume', 20_000);
    const resumeMs = performance.now() - restartAt;
    assert.deepEqual(pinned.errors, []);
    assert.deepEqual(pinned.seen.map((b) => b.revision), written, 'the resumed stream: no gap, no duplicate');

    t.diagnostic(
      `leader m${leader} killed: first successful write after ${firstWriteMs.toFixed(0)} ms; new leader m${newLeader}; ` +
        `watch pinned to m${leader} caught up ${resumeMs.toFixed(0)} ms after its restart began`,
    );
    assert.ok(firstWriteMs < 10_000, `first write took ${firstWriteMs.toFixed(0)} ms`);
    await any.w.cancel();
    await pinned.w.cancel();
    await pinnedStore.close();
    await s.close();
  });

  it('kill -9 of the leader: a txn a follower forwarded to it is sent again once a new leader is elected', async (t) => {
    await cluster.waitHealthy();
    const leader = await cluster.leader();
    const follower = cluster.endpoints.findIndex((_, i) => i !== leader);
    // Only the follower, and a deadline far beyond etcd's election: before, the lost txn
    // waited out its deadline and failed with UnavailableError (outcome unknown).
    const callTimeoutMs = 15_000;
    const s = await EtcdStore.open({ endpoints: [cluster.endpoints[follower]], callTimeoutMs, retryWindowMs: 30_000 });
    const key = `/election/${randomUUID()}`;
    await cluster.kill(leader, 'SIGKILL');
    const t0 = performance.now();
    const created = s.txn({ compare: [{ key, modRevision: 0 }], success: [{ type: 'put', key, value: 'v' }] });
    // A server always has other calls going; this read waits at the follower until it
    // learns of the new leader, and is what tells the store that an election happened.
    const other = s.get(`${key}/other`).catch(() => undefined);
    const res = await created;
    const ms = performance.now() - t0;
    await other;
    assert.equal(res.succeeded, true, 'sent again and applied once (not reported as a conflict with itself)');
    assert.equal((await s.get(key))?.value, 'v');
    t.diagnostic(`txn at follower m${follower} after kill -9 of leader m${leader}: succeeded after ${ms.toFixed(0)} ms`);
    assert.ok(ms < callTimeoutMs, `took ${ms.toFixed(0)} ms: it waited out its deadline`);
    await s.close();
    await cluster.restart(leader);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { CompactedError, NotFoundError, UnavailableError } from '../errors.js';
import { storeContract, waitFor } from './contract.js';
import { SqliteStore } from './sqlite.js';
import type { Store, WatchEvent } from './store.js';

const contractDir = mkdtempSync(join(tmpdir(), 'kiver-sqlite-contract-'));
let seq = 0;
storeContract('sqlite (file)', {
  create: async () => SqliteStore.open(join(contractDir, `t${seq++}.db`)),
  cleanup: async () => rmSync(contractDir, { recursive: true, force: true }),
  compact: async (s, revision) => {
    (s as SqliteStore).compact(revision);
  },
});

/** Every event after `afterRevision`, by replaying the watch log. */
async function history(s: Store, afterRevision: number): Promise<Array<{ revision: number; events: WatchEvent[] }>> {
  const target = await s.revision();
  const out: Array<{ revision: number; events: WatchEvent[] }> = [];
  const errors: Error[] = [];
  const w = await s.watch('', {
    afterRevision,
    onEvents: (events, revision) => out.push({ revision, events }),
    onError: (err) => errors.push(err),
  });
  await waitFor(() => errors.length > 0 || target === afterRevision || out.at(-1)?.revision === target, 'the replay');
  await w.cancel();
  assert.deepEqual(errors, []);
  return out;
}

describe('sqlite store', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kiver-sqlite-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('works in memory', async () => {
    const s = SqliteStore.open(':memory:');
    const rev = await s.put('/a', '1');
    assert.equal((await s.get('/a'))?.modRevision, rev);
    assert.deepEqual((await history(s, 0)).map((b) => b.revision), [rev]);
    await s.close();
  });

  it('reopen keeps data, revisions, history and leases; ids are never reused', async () => {
    const path = join(dir, 'reopen.db');
    let s = SqliteStore.open(path);
    await s.put('/k/a', 'a1');
    await s.txn({ compare: [], success: [{ type: 'put', key: '/k/b', value: 'b1' }, { type: 'put', key: '/k/a', value: 'a2' }] });
    await s.delete('/k/b');
    const lease = await s.grantLease(60);
    await s.put('/k/leased', 'l', { lease });
    const rev = await s.revision();
    const before = await s.list('/');
    const hist = await history(s, 0);
    await s.close();

    s = SqliteStore.open(path);
    assert.equal(await s.revision(), rev);
    assert.deepEqual(await s.list('/'), before);
    assert.deepEqual(await history(s, 0), hist, 'the watch log survives');
    assert.equal(await s.keepAlive(lease), 60, 'the lease survives');
    assert.equal((await s.get('/k/leased'))?.lease, lease);
    assert.equal(await s.put('/k/c', 'c'), rev + 1, 'revisions continue');
    assert.ok((await s.grantLease(60)) > lease, 'lease ids continue');
    await s.close();
  });

  it('a lease that expired while the store was closed is reaped after reopen', async () => {
    const path = join(dir, 'lease-reopen.db');
    let s = SqliteStore.open(path);
    const lease = await s.grantLease(1);
    const granted = Date.now();
    await s.put('/l/k', 'v', { lease });
    await s.put('/l/stay', 'v');
    const rev = await s.revision();
    await s.close();
    // The point of this test is wall-clock time passing while closed: leases continue
    // from their stored expiry, they are not renewed by a restart.
    await new Promise((r) => setTimeout(r, Math.max(0, granted + 1100 - Date.now())));
    s = SqliteStore.open(path);
    await waitFor(async () => (await s.get('/l/k')) === undefined, 'the expired lease to be reaped', 5000);
    assert.equal((await s.get('/l/stay'))?.value, 'v');
    const tail = await history(s, rev);
    assert.deepEqual(tail.flatMap((b) => b.events.map((e) => [e.type, e.kv.key])), [['delete', '/l/k']]);
    await assert.rejects(s.keepAlive(lease), NotFoundError);
    await s.close();
  });

  it('a second process (or store) cannot open a file in use', async () => {
    const path = join(dir, 'locked.db');
    const s = SqliteStore.open(path);
    assert.throws(() => SqliteStore.open(path, { lockTimeoutMs: 50 }), UnavailableError);
    await s.close();
    const again = SqliteStore.open(path, { lockTimeoutMs: 50 });
    await again.close();
  });

  it('compacts the log to the last N revisions; older watches get CompactedError', async () => {
    const path = join(dir, 'compact.db');
    let s = SqliteStore.open(path, { retainRevisions: 10, compactIntervalMs: 20 });
    for (let i = 0; i < 60; i++) await s.put(`/c/k${i % 7}`, String(i));
    await waitFor(() => s.compactedRevision() === 50, 'the compaction timer to keep the last 10 revisions');
    const errors: Error[] = [];
    await s.watch('/c/', { afterRevision: 5, onEvents: () => assert.fail('no events from a compacted revision'), onError: (e) => errors.push(e) });
    await waitFor(() => errors.length > 0, 'CompactedError');
    assert.ok(errors[0] instanceof CompactedError);
    assert.equal((errors[0] as CompactedError).compactRevision, 50);
    assert.deepEqual((await history(s, 50)).map((b) => b.revision), [51, 52, 53, 54, 55, 56, 57, 58, 59, 60]);
    await s.close();
    s = SqliteStore.open(path, { compactIntervalMs: 0 });
    assert.equal(s.compactedRevision(), 50, 'compaction is persistent');
    assert.equal(await s.revision(), 60);
    await s.close();
  });

  it('kill -9 mid-write leaves every transaction all or nothing, and nothing committed is lost', async () => {
    const path = join(dir, 'crash.db');
    const writer = fileURLToPath(new URL('./sqlite-crash-writer.js', import.meta.url));
    let lastReported = 0;
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [writer, path], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<NodeJS.Signals | number | null>((r) => child.on('exit', (code, sig) => r(sig ?? code)));
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      try {
        await waitFor(() => /^start \d+$/m.test(out), `the writer to start (stderr: ${err})`);
        const start = Number(/^start (\d+)$/m.exec(out)![1]);
        assert.ok(start >= lastReported, `round ${round}: resumed from ${start}, but ${lastReported} was committed`);
        const reported = () => Math.max(0, ...out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number));
        await waitFor(() => reported() >= start + 100 + round * 37, `the writer to commit (stderr: ${err})`);
      } finally {
        child.kill('SIGKILL');
      }
      assert.equal(await exited, 'SIGKILL');
      lastReported = Math.max(0, ...out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number));

      const s = SqliteStore.open(path);
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((k) => s.get(`/crash/${k}`)));
      const counter = Number(a!.value.split(':')[0]);
      assert.ok(counter >= lastReported, `counter ${counter} < last reported commit ${lastReported}`);
      assert.equal(b!.value, a!.value, 'a and b from the same transaction');
      assert.equal(c!.value, a!.value, 'a and c from the same transaction');
      assert.equal(a!.modRevision, await s.revision());
      assert.equal(b!.modRevision, a!.modRevision);
      assert.equal(c!.modRevision, a!.modRevision);
      assert.equal(a!.version, counter);
      // The log: revisions 1..current, each one whole transaction.
      const hist = await history(s, 0);
      assert.deepEqual(hist.map((h) => h.revision), Array.from({ length: counter }, (_, i) => i + 1));
      for (const h of hist) {
        assert.deepEqual(h.events.map((e) => e.kv.key), ['/crash/a', '/crash/b', '/crash/c']);
        assert.equal(new Set(h.events.map((e) => e.kv.value)).size, 1);
        assert.equal(Number(h.events[0].kv.value.split(':')[0]), h.revision);
      }
      await s.close();
      const db = new Database(path, { readonly: true });
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      db.close();
    }
  });

  // Speed is measured by `npm run bench:scheduler` (SQLite line); this prints the figures
  // but asserts only what the scheduler relies on, so it cannot fail on a loaded machine.
  it('takes 1,000 six-op CAS transactions and lists 20,000 keys in key order', async (t) => {
    const s = SqliteStore.open(join(dir, 'perf.db'));
    const value = JSON.stringify({ spec: { image: 'kiver/mariadb', cpu: 2, memory: 4294967296, labels: { app: 'db' } }, status: { phase: 'Pending' } });
    for (let n = 0; n < 20; n++) await s.put(`/kiver/nodes/n${n}`, value);
    let t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      const node = (await s.get(`/kiver/nodes/n${i % 20}`))!;
      const res = await s.txn({
        compare: [
          { key: node.key, modRevision: node.modRevision },
          { key: `/kiver/replicas/s${i}/0`, modRevision: 0 },
          { key: `/kiver/ips/10.0.${i >> 8}.${i & 255}`, modRevision: 0 },
        ],
        success: [
          { type: 'put', key: node.key, value },
          { type: 'put', key: `/kiver/replicas/s${i}/0`, value },
          { type: 'put', key: `/kiver/ips/10.0.${i >> 8}.${i & 255}`, value },
          { type: 'put', key: `/kiver/assignments/n${i % 20}/s${i}`, value },
          { type: 'put', key: `/kiver/events/s${i}`, value },
          { type: 'put', key: `/kiver/services/s${i}`, value },
        ],
      });
      assert.ok(res.succeeded);
    }
    const txnMs = performance.now() - t0;
    const rate = 1000 / (txnMs / 1000);
    await s.txn({ compare: [], success: Array.from({ length: 20_000 }, (_, i) => ({ type: 'put' as const, key: `/kiver/big/k${i}`, value })) });
    t0 = performance.now();
    const listed = await s.list('/kiver/big/');
    const listMs = performance.now() - t0;
    assert.equal(listed.kvs.length, 20_000);
    const keys = listed.kvs.map((kv) => kv.key);
    assert.deepEqual(keys, [...keys].sort(), 'listed in key order');
    assert.equal((await s.list('/kiver/replicas/')).kvs.length, 1000, 'every transaction committed');
    t.diagnostic(`1,000 six-op CAS txns (each after a get): ${txnMs.toFixed(0)} ms = ${rate.toFixed(0)} txns/s; list of 20,000 keys: ${listMs.toFixed(1)} ms`);
    await s.close();
  });
});

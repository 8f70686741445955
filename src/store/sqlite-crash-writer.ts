/**
 * Test helper for sqlite.test.ts (not part of the product): writes multi-key transactions
 * in a tight loop until it is killed. Each transaction puts /crash/a, /crash/b and
 * /crash/c to the same counter value (plus a few KB so a transaction spans several
 * pages), so after a kill -9 the test can check that every transaction is all or nothing.
 * Prints the counter of each 20th committed transaction: a lower bound of what must
 * survive the kill.
 *
 * Usage: node sqlite-crash-writer.js DB_PATH
 */
import { SqliteStore } from './sqlite.js';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: sqlite-crash-writer DB_PATH\n');
  process.exit(2);
}
// Exit when the test that started us is gone (we are re-parented): a test process killed from
// outside (a mutation-testing timeout) must not leave this loop running forever. Polled in the
// loop, which never yields to I/O (the store's calls resolve synchronously).
const parent = process.ppid;
// Keep the whole history, so the test can replay every revision ever written.
const store = SqliteStore.open(path, { retainRevisions: Number.MAX_SAFE_INTEGER });
const keys = ['/crash/a', '/crash/b', '/crash/c'];
let n = Number((await store.get(keys[0]))?.value.split(':')[0] ?? 0);
process.stdout.write(`start ${n}\n`);
for (;;) {
  n++;
  const a = await store.get(keys[0]);
  const value = `${n}:${'x'.repeat(2000 + ((n * 7919) % 3000))}`;
  const res = await store.txn({
    compare: [{ key: keys[0], modRevision: a?.modRevision ?? 0 }],
    success: keys.map((key) => ({ type: 'put' as const, key, value })),
  });
  if (!res.succeeded) throw new Error('lost a compare-and-swap with no other writer');
  if (n % 20 === 0) {
    if (process.ppid !== parent) process.exit(0);
    process.stdout.write(`${n}\n`);
  }
}

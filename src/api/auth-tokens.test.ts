/**
 * Bearer tokens: only hashes in the store, roles kept apart, token files 0600 and
 * reused across restarts. (Which routes need which role: test/api-auth.test.ts.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SqliteStore } from '../store/sqlite.js';
import { K } from '../model/keys.js';
import { EventEmitter } from 'node:events';
import type { StoreCache } from '../controllers/cache.js';
import { ConflictError } from '../errors.js';
import { TokenAuth, bootstrapTokens, newToken, nodeCredentialId, record } from './auth.js';

function memStore(t: TestContext): SqliteStore {
  const s = SqliteStore.open(':memory:');
  t.after(() => s.close());
  return s;
}

function tempDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'kiver-auth-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('token auth', () => {
  it('new tokens name their role and carry 192 random bits', () => {
    const a = newToken('admin');
    assert.match(a, /^kiver_admin_[A-Za-z0-9_-]{32}$/);
    assert.match(newToken('agent'), /^kiver_agent_[A-Za-z0-9_-]{32}$/);
    assert.notEqual(newToken('admin'), a);
  });

  it('the store holds only the SHA-256 of a token, with its role', async (t) => {
    const store = memStore(t);
    const auth = new TokenAuth(store);
    const token = newToken('admin');
    await auth.add('admin', 'admin', token);
    const kv = (await store.get(K.token('admin')))!;
    assert.ok(!kv.value.includes(token));
    const rec = JSON.parse(kv.value);
    assert.equal(rec.hash, createHash('sha256').update(token).digest('hex'));
    assert.equal(rec.role, 'admin');
    assert.ok(!Number.isNaN(Date.parse(rec.createdAt)));
  });

  it('lists token ids with role and node, never a hash; a revoked credential is marked revoked', async (t) => {
    const store = memStore(t);
    const auth = new TokenAuth(store);
    await auth.add('admin', 'admin', newToken('admin'));
    await auth.add(nodeCredentialId('n1'), 'node', newToken('node'), 'n1');
    await auth.add(nodeCredentialId('n2'), 'node', '', 'n2'); // revoked by `kiver node rekey`
    const list = await auth.list();
    assert.deepEqual(list.map(({ createdAt, ...r }) => (assert.ok(createdAt), r)), [
      { id: 'admin', role: 'admin' },
      { id: 'node.n1', role: 'node', node: 'n1' },
      { id: 'node.n2', role: 'node', node: 'n2', revoked: true },
    ]);
    assert.ok(!JSON.stringify(list).includes('hash'));
    assert.deepEqual((await auth.get('node.n1'))?.record.node, 'n1');
    assert.equal(await auth.get('nope'), undefined);
  });

  it('a revoked credential (empty secret) is stored without a hash and no bearer matches it, not even an empty one', async (t) => {
    const auth = new TokenAuth(memStore(t));
    await auth.add(nodeCredentialId('n1'), 'node', '', 'n1');
    assert.equal((await auth.get('node.n1'))?.record.hash, '');
    assert.equal(await auth.verify(''), undefined);
    assert.deepEqual(record('node', '', 'n1').hash, '');
    assert.equal('node' in record('admin', 'x'), false, 'no node field unless given');
  });

  it('remove: the token stops working at once', async (t) => {
    const auth = new TokenAuth(memStore(t));
    const tok = newToken('viewer');
    await auth.add('v', 'viewer', tok);
    assert.deepEqual(await auth.verify(tok), { id: 'v', role: 'viewer' });
    await auth.remove('v');
    assert.equal(await auth.verify(tok), undefined);
    assert.equal(await auth.get('v'), undefined);
  });

  it('rotate keeps the role and node, refuses an unknown id, and loses to a concurrent change (compare-and-swap)', async (t) => {
    const store = memStore(t);
    const auth = new TokenAuth(store);
    await assert.rejects(auth.rotate('ghost'), (e) => e instanceof ConflictError && /ghost does not exist/.test(e.message));
    assert.equal(await auth.get('ghost'), undefined, 'nothing stored');
    const old = newToken('node');
    await auth.add('node.n1', 'node', old, 'n1');
    const { role, token } = await auth.rotate('node.n1');
    assert.equal(role, 'node');
    assert.deepEqual(await auth.verify(token), { id: 'node.n1', role: 'node', node: 'n1' });
    assert.equal(await auth.verify(old), undefined);
    assert.equal((await auth.get('node.n1'))?.record.node, 'n1');
    // Another server rotates between our read and our write: ours must fail and write nothing.
    const theirs = record('node', newToken('node'), 'n1');
    const txn = store.txn.bind(store);
    t.mock.method(store, 'txn', async (req: Parameters<typeof txn>[0]) => {
      await store.put(K.token('node.n1'), JSON.stringify(theirs));
      return txn(req);
    });
    await assert.rejects(auth.rotate('node.n1'), (e) => e instanceof ConflictError && /changed meanwhile/.test(e.message));
    assert.equal((await auth.get('node.n1'))?.record.hash, theirs.hash, 'the other rotation stands');
  });

  it('follows token changes from the store cache by token id, and ignores other keys', async (t) => {
    const store = memStore(t);
    const auth = new TokenAuth(store);
    const cache = new EventEmitter();
    auth.useCache(cache as unknown as StoreCache);
    await auth.verify('kiver_admin_unknown'); // loads now, so the next second has no reload
    const tok = newToken('node');
    const value = JSON.stringify(record('node', tok, 'n7'));
    cache.emit('change', { key: `${K.root}nodes/n7`, kv: { key: `${K.root}nodes/n7`, value } });
    assert.equal(await auth.verify(tok), undefined, 'a non-token key is not a token');
    cache.emit('change', { key: K.token('node.n7'), kv: { key: K.token('node.n7'), value } });
    assert.deepEqual(await auth.verify(tok), { id: 'node.n7', role: 'node', node: 'n7' });
    cache.emit('change', { key: K.token('node.n7') });
    assert.equal(await auth.verify(tok), undefined, 'deleted on another server');
  });

  it('reloads from the store on a miss at most once a second, and fully after a minute', async (t) => {
    const store = memStore(t);
    const other = new TokenAuth(store); // another server, writing to the shared store
    const auth = new TokenAuth(store); // no cache: only reloads bring others' changes
    let now = 1_000_000;
    t.mock.method(Date, 'now', () => now);
    const a = newToken('viewer');
    await other.add('a', 'viewer', a);
    assert.equal((await auth.verify(a))?.id, 'a', 'first use loads');
    const b = newToken('viewer');
    await other.add('b', 'viewer', b);
    now += 500;
    assert.equal((await auth.verify(b))?.id, 'b', 'a miss reloads');
    const c = newToken('viewer');
    await other.add('c', 'viewer', c);
    now += 1000;
    assert.equal(await auth.verify(c), undefined, 'not twice within a second');
    now += 1;
    assert.equal((await auth.verify(c))?.id, 'c', 'again after a second');
    // A token removed elsewhere stays valid here until the minute's full reload (the cache
    // is what makes revocations fast; this is the backstop).
    await other.remove('a');
    now += 60_000; // the last load was the miss reload that found c
    assert.equal((await auth.verify(a))?.id, 'a');
    now += 1;
    assert.equal(await auth.verify(a), undefined, 'reloaded after a minute');
  });

  it('bootstrapTokens: admin and join tokens in 0600 files, reused across restarts, minted only when the store has none', async (t) => {
    const store = memStore(t);
    const dir = join(tempDir(t), 'data');
    const auth = new TokenAuth(store);
    const first = await bootstrapTokens(auth, dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of [first.adminTokenFile, first.joinTokenFile]) assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.equal(readFileSync(first.adminTokenFile, 'utf8').trim(), first.admin);
    assert.deepEqual(await auth.verify(first.admin), { id: 'admin', role: 'admin' });
    assert.deepEqual(await auth.verify(first.join), { id: 'join', role: 'agent' });
    // A restart (a new server process on the same store) keeps both.
    const again = await bootstrapTokens(new TokenAuth(store), dir);
    assert.equal(again.admin, first.admin);
    assert.equal(again.join, first.join);
    // The join token rotated on another server: this file is stale, the store's token stands
    // (minting here would revoke the token the other server just handed out).
    const { token } = await auth.rotate('join');
    const stale = await bootstrapTokens(new TokenAuth(store), dir);
    assert.equal(stale.join, first.join, 'the stale file is left as it is, not re-minted');
    assert.equal((await auth.verify(token))?.role, 'agent', 'the rotated token still works');
    // The admin file lost (the store still has the record): a new admin token is minted and written.
    rmSync(first.adminTokenFile);
    const lost = await bootstrapTokens(new TokenAuth(store), dir);
    assert.notEqual(lost.admin, first.admin);
    assert.equal(readFileSync(lost.adminTokenFile, 'utf8').trim(), lost.admin);
    assert.deepEqual(await new TokenAuth(store).verify(lost.admin), { id: 'admin', role: 'admin' });
    // A new store (files from an old cluster): tokens of the right role are minted and written.
    const fresh = memStore(t);
    writeFileSync(first.adminTokenFile, first.join);
    const minted = await bootstrapTokens(new TokenAuth(fresh), dir);
    assert.notEqual(minted.admin, first.admin);
    assert.notEqual(minted.admin, first.join);
    assert.equal(readFileSync(minted.adminTokenFile, 'utf8').trim(), minted.admin);
    assert.deepEqual(await new TokenAuth(fresh).verify(minted.admin), { id: 'admin', role: 'admin' });
    assert.deepEqual(await new TokenAuth(fresh).verify(minted.join), { id: 'join', role: 'agent' });
  });
});

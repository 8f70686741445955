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
import { TokenAuth, bootstrapTokens, newToken } from './auth.js';

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

  it('verifies each token to its own role; anything else is no role', async (t) => {
    const auth = new TokenAuth(memStore(t));
    const admin = newToken('admin');
    const agent = newToken('agent');
    await auth.add('admin', 'admin', admin);
    await auth.add('join', 'agent', agent);
    assert.equal(await auth.verify(admin), 'admin');
    assert.equal(await auth.verify(agent), 'agent');
    for (const bad of ['', 'x', admin.slice(0, -1), `${admin}x`, admin.toUpperCase(), createHash('sha256').update(admin).digest('hex')]) {
      assert.equal(await auth.verify(bad), undefined, JSON.stringify(bad));
    }
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

  it('sees tokens added by another server after its 5 s cache; its own at once', async (t) => {
    const store = memStore(t);
    const here = new TokenAuth(store);
    const there = new TokenAuth(store);
    const first = newToken('admin');
    await there.add('a', 'admin', first);
    assert.equal(await here.verify(first), 'admin', 'the first verify loads');
    const second = newToken('admin');
    await there.add('b', 'admin', second);
    assert.equal(await here.verify(second), undefined, 'cached for up to 5 s');
    const own = newToken('agent');
    await here.add('c', 'agent', own);
    assert.equal(await here.verify(own), 'agent', 'adding reloads');
    const third = newToken('admin');
    await there.add('d', 'admin', third);
    const now = Date.now;
    const t0 = now();
    try {
      Date.now = () => t0 + 4_000;
      assert.equal(await here.verify(third), undefined);
      Date.now = () => t0 + 5_100;
      assert.equal(await here.verify(third), 'admin', 'reloaded after 5 s');
    } finally {
      Date.now = now;
    }
  });

  it('bootstrap writes 0600 token files once and reuses them on the next start', async (t) => {
    const store = memStore(t);
    const dir = join(tempDir(t), 'state');
    const first = await bootstrapTokens(new TokenAuth(store), dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(first.adminTokenFile, join(dir, 'admin.token'));
    assert.equal(first.joinTokenFile, join(dir, 'join.token'));
    for (const [file, token] of [[first.adminTokenFile, first.admin], [first.joinTokenFile, first.join]]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
      assert.equal(readFileSync(file, 'utf8'), `${token}\n`);
    }
    const auth = new TokenAuth(store);
    assert.equal(await auth.verify(first.admin), 'admin');
    assert.equal(await auth.verify(first.join), 'agent');
    const again = await bootstrapTokens(new TokenAuth(store), dir);
    assert.deepEqual([again.admin, again.join], [first.admin, first.join], 'a restart keeps the tokens');
    // Fixed ids: a restart or another server replaces a token's record instead of adding one.
    assert.deepEqual((await store.list(K.tokens)).kvs.map((kv) => kv.key), [K.token('admin'), K.token('join')]);
  });

  it('bootstrap replaces a token file that holds an unknown token or one of the wrong role', async (t) => {
    const store = memStore(t);
    const dir = tempDir(t);
    const first = await bootstrapTokens(new TokenAuth(store), dir);
    writeFileSync(first.adminTokenFile, `${first.join}\n`); // the join token where the admin token belongs
    writeFileSync(first.joinTokenFile, 'kiver_agent_forged\n');
    const next = await bootstrapTokens(new TokenAuth(store), dir);
    assert.notEqual(next.admin, first.join);
    assert.notEqual(next.join, 'kiver_agent_forged');
    const auth = new TokenAuth(store);
    assert.equal(await auth.verify(next.admin), 'admin');
    assert.equal(await auth.verify(next.join), 'agent');
    assert.equal(readFileSync(next.adminTokenFile, 'utf8'), `${next.admin}\n`);
    assert.equal(statSync(next.joinTokenFile).mode & 0o777, 0o600);
  });
});

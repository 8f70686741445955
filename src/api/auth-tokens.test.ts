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

});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import { StoreCache } from '../controllers/cache.js';
import { TokenAuth, newToken, nodeCredentialId } from './auth.js';

describe('TokenAuth', () => {
  it('two servers on one store: a token made on one works on the other; a revocation reaches the other through its cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiver-auth-'));
    const store = await openStore(`sqlite:${join(dir, 'kiver.db')}`);
    const cache = new StoreCache(store);
    await cache.start();
    try {
      const a = new TokenAuth(store);
      const b = new TokenAuth(store);
      b.useCache(cache);
      assert.equal(await b.verify('kiver_admin_nothing'), undefined);
      const cred = newToken('node');
      await a.add(nodeCredentialId('n1'), 'node', cred, 'n1');
      assert.deepEqual(await a.verify(cred), { id: 'node.n1', role: 'node', node: 'n1' });
      // b missed a moment ago; its cache brings the new credential without a reload
      const deadline = Date.now() + 5000;
      while (!(await b.verify(cred)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal((await b.verify(cred))?.node, 'n1');
      await a.remove(nodeCredentialId('n1'));
      assert.equal(await a.verify(cred), undefined, 'revoked at once where revoked');
      while ((await b.verify(cred)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await b.verify(cred), undefined, 'and on the other server within the watch latency');
      // A rotation: the old secret stops, the new one works.
      const first = newToken('agent');
      await a.add('join', 'agent', first);
      const { token } = await a.rotate('join');
      assert.equal(await a.verify(first), undefined);
      assert.equal((await a.verify(token))?.role, 'agent');
    } finally {
      await cache.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

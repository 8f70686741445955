import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from './sqlite.js';
import { restoreSnapshot, saveSnapshot } from './snapshot.js';
import { ConflictError, InputError } from '../errors.js';

describe('control-plane snapshot', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiver-snap-'));
  after(() => rm(dir, { recursive: true, force: true }));

  it('restores every object onto an empty store, without lease-bound keys', async () => {
    const a = SqliteStore.open(join(dir, 'a.db'));
    await a.put('/kiver/services/web', '{"spec":{"name":"web"}}');
    await a.put('/kiver/replicas/web/0', '{"node":"n1"}');
    await a.put('/kiver/tokens/admin', '{"hash":"x"}');
    const lease = await a.grantLease(60);
    await a.put('/kiver/node-alive/n1', '{}', { lease });
    const file = join(dir, 'snap.jsonl');
    const saved = await saveSnapshot(a, file);
    assert.equal(saved.keys, 3);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const b = SqliteStore.open(join(dir, 'b.db'));
    assert.deepEqual(await restoreSnapshot(b, file), { keys: 3 });
    const got = (await b.list('/kiver/')).kvs.map((kv) => [kv.key, kv.value]);
    const want = (await a.list('/kiver/')).kvs.filter((kv) => kv.lease === 0).map((kv) => [kv.key, kv.value]);
    assert.deepEqual(got, want);
    await assert.rejects(restoreSnapshot(b, file), ConflictError, 'refuses a non-empty store');
    await restoreSnapshot(b, file, { force: true });
    await a.close();
    await b.close();
  });

  it('rejects a bad file with its line and writes nothing', async () => {
    const file = join(dir, 'bad.jsonl');
    await writeFile(file, '{"kind":"kiver-snapshot","version":1,"revision":1}\n{"key":"/kiver/a","value":"1"}\n{"key":"/etc/passwd","value":"x"}\n');
    const c = SqliteStore.open(join(dir, 'c.db'));
    await assert.rejects(restoreSnapshot(c, file), (e: Error) => e instanceof InputError && /bad.jsonl:3/.test(e.message));
    assert.equal((await c.list('/kiver/')).kvs.length, 0);
    await c.close();
  });
});

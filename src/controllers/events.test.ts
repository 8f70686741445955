import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import { createLogger } from '../log.js';
import { K } from '../model/keys.js';
import { EventLimiter, EventRecorder, MAX_EVENT_MESSAGE } from './events.js';
import { TooManyRequestsError } from '../errors.js';

describe('events are bounded', () => {
  it('keeps at most the cap by count, oldest pruned first, and truncates messages', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiver-events-'));
    const store = await openStore(`sqlite:${join(dir, 'kiver.db')}`);
    try {
      const rec = new EventRecorder(store, createLogger('test', 'silent'), 50);
      for (let i = 0; i < 300; i++) await rec.record(`node/n${i}`, 'Normal', 'Forged', `event ${i} ${'x'.repeat(i === 299 ? 100_000 : 0)}`);
      await rec.prune();
      const kept = (await store.list(K.events)).kvs.map((kv) => JSON.parse(kv.value) as { object: string; message: string });
      assert.equal(kept.length, 50);
      assert.ok(kept.some((e) => e.object === 'node/n299'), 'the newest stay');
      assert.ok(!kept.some((e) => e.object === 'node/n0'), 'the oldest go');
      const long = kept.find((e) => e.object === 'node/n299')!;
      assert.ok(long.message.length <= MAX_EVENT_MESSAGE + 20 && long.message.endsWith('(truncated)'));
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('limits each node to its burst, then its rate, and logs a storm once per minute', () => {
    const lines: string[] = [];
    const log = { warn: (_o: unknown, m: string) => lines.push(m) } as unknown as ReturnType<typeof createLogger>;
    const lim = new EventLimiter(log, 10, 2);
    const t0 = 1_000_000;
    for (let i = 0; i < 10; i++) lim.take('a', t0);
    assert.throws(() => lim.take('a', t0), TooManyRequestsError);
    for (let i = 0; i < 100; i++) assert.throws(() => lim.take('a', t0 + 10));
    lim.take('b', t0); // another node has its own bucket
    lim.take('a', t0 + 1000); // refilled at 2/s
    assert.equal(lines.length, 1);
  });
});

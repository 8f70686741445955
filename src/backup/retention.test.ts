import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { expired } from './retention.js';
import type { Backup } from '../model/backup.js';

const day = 24 * 3600 * 1000;
const now = new Date('2026-12-10T00:00:00Z');
function b(id: string, daysAgo: number, state: Backup['state'] = 'completed', verified = state === 'completed'): Backup {
  const at = new Date(now.getTime() - daysAgo * day).toISOString();
  return { id, service: 's', target: 't', trigger: 'schedule', state, createdAt: at, finishedAt: at, bytes: 1, verified, objectKey: 'o', manifestKey: 'm' };
}

describe('retention', () => {
  it('keeps the newest `keep` good backups and deletes older ones', () => {
    const all = [b('a', 5), b('b', 4), b('c', 3), b('d', 2), b('e', 1)];
    assert.deepEqual(expired(all, { keep: 3 }, now).map((x) => x.id).sort(), ['a', 'b']);
  });
  it('keeps backups younger than keepDays even beyond keep', () => {
    const all = [b('a', 40), b('b', 20), b('c', 3), b('d', 2)];
    assert.deepEqual(expired(all, { keep: 1, keepDays: 30 }, now).map((x) => x.id), ['a']);
  });
  it('deletes nothing while the newest backup failed or is still running', () => {
    const good = [b('a', 5), b('b', 4), b('c', 3)];
    assert.deepEqual(expired([...good, b('f', 0, 'failed')], { keep: 1 }, now), []);
    assert.deepEqual(expired([...good, b('r', 0, 'running')], { keep: 1 }, now), []);
  });
  it('never counts failed or unverified backups as the ones kept', () => {
    const all = [b('a', 5), b('x', 4, 'failed'), b('u', 3, 'completed', false), b('c', 1)];
    assert.deepEqual(expired(all, { keep: 2 }, now).map((x) => x.id), []);
    assert.deepEqual(expired(all, { keep: 1 }, now).map((x) => x.id), ['a']);
  });
});

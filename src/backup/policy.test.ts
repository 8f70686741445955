import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkPolicy, dueSlot } from './policy.js';
import { InputError } from '../errors.js';

const field = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InputError);
    return err.field;
  }
  assert.fail('no error');
};

describe('backup policy', () => {
  it('names the bad field', () => {
    assert.equal(field(() => checkPolicy('s', { schedule: '61 * * * *', target: 't' })), 'schedule');
    assert.equal(field(() => checkPolicy('s', { schedule: '0 2 * * *', tz: 'Mars/Olympus', target: 't' })), 'tz');
    assert.equal(field(() => checkPolicy('s', { schedule: '0 2 * * *', target: 't', keep: 0 })), 'keep');
    assert.equal(field(() => checkPolicy('s', { schedule: '0 2 * * *', target: 't', keepDays: 0 })), 'keepDays');
  });
  it('runs 02:00 in the policy time zone', () => {
    const p = checkPolicy('s', { schedule: '0 2 * * *', tz: 'Asia/Shanghai', target: 't' }, new Date('2026-12-01T00:00:00Z'));
    assert.equal(dueSlot(p, new Date('2026-12-01T17:59:59Z')), undefined);
    assert.equal(dueSlot(p, new Date('2026-12-01T18:00:00Z'))?.toISOString(), '2026-12-01T18:00:00.000Z');
  });
  it('runs a missed slot once: only the newest of several missed slots is due, none after it ran', () => {
    const p = checkPolicy('s', { schedule: '* * * * *', target: 't' }, new Date('2026-12-01T00:00:30Z'));
    const now = new Date('2026-12-01T00:10:30Z');
    const due = dueSlot(p, now);
    assert.equal(due?.toISOString(), '2026-12-01T00:10:00.000Z');
    assert.equal(dueSlot({ ...p, lastSlot: due!.toISOString() }, now), undefined);
  });
});

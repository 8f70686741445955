import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneSnapshots, snapshotName } from './snapshot-schedule.js';

describe('scheduled snapshots', () => {
  it('names files by UTC second, so names sort by age', () => {
    assert.equal(snapshotName(new Date('2026-12-02T05:15:00.123Z')), 'kiver-20261202T051500Z.snap');
    assert.ok(snapshotName(new Date('2026-12-02T05:15:09Z')) < snapshotName(new Date('2026-12-02T05:15:10Z')));
  });

  it('keeps the newest N and leaves other files alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiver-snaps-'));
    try {
      const names = [3, 1, 4, 2].map((s) => snapshotName(new Date(Date.UTC(2026, 11, 2, 5, 0, s))));
      for (const n of [...names, 'notes.txt', 'kiver-x.snap']) writeFileSync(join(dir, n), '');
      assert.deepEqual(await pruneSnapshots(dir, 2), [names[1], names[3]]);
      assert.deepEqual(readdirSync(dir).sort(), ['kiver-20261202T050003Z.snap', 'kiver-20261202T050004Z.snap', 'kiver-x.snap', 'notes.txt']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

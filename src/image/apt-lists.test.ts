import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listsPrefix, staleAptLists, type SuiteSource } from './apt.js';

describe('apt list freshness (image build and node init refresh stale lists)', () => {
  const suite: SuiteSource = { uri: 'http://deb.debian.org/debian', suite: 'bookworm', components: ['main'] };
  const dir = mkdtempSync(join(tmpdir(), 'kiver-apt-lists-'));

  it('missing lists need an update', () => {
    assert.match(staleAptLists([suite], { listsDir: dir }) ?? '', /no package lists for http:\/\/deb\.debian\.org\/debian bookworm/);
  });

  it('lists written just now are fresh; older than the limit they are stale; our stamp counts as fresh', () => {
    const p = listsPrefix(suite.uri, suite.suite);
    writeFileSync(join(dir, `${p}InRelease`), 'Date: Sat, 10 May 2025 09:00:00 UTC\n');
    writeFileSync(join(dir, `${p}main_binary-amd64_Packages`), '');
    assert.equal(staleAptLists([suite], { listsDir: dir }), undefined);
    const later = Date.now() + 25 * 3600_000;
    assert.match(staleAptLists([suite], { listsDir: dir, now: later }) ?? '', /package lists are 2[45] h old/);
    const stamp = join(dir, 'stamp');
    writeFileSync(stamp, '');
    utimesSync(stamp, (later - 3600_000) / 1000, (later - 3600_000) / 1000); // our apt-get update an hour before `later`
    assert.equal(staleAptLists([suite], { listsDir: dir, now: later, stamp }), undefined);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeDaemonConfig, readDaemonConfig, RELOADABLE_KEYS } from './docker-daemon-config.js';
import { BootstrapError } from './step.js';

describe('daemon.json merge', () => {
  const want = { 'live-restore': true, 'userland-proxy': false, 'log-opts': { 'max-size': '50m', 'max-file': '3' } };

  it('keeps every other key and merges log-opts key by key', () => {
    const { next, changed } = mergeDaemonConfig({ debug: true, 'log-opts': { labels: 'team', 'max-size': '10m' }, 'registry-mirrors': ['http://m'] }, want);
    assert.deepEqual(next, { debug: true, 'registry-mirrors': ['http://m'], 'live-restore': true, 'userland-proxy': false, 'log-opts': { labels: 'team', 'max-size': '50m', 'max-file': '3' } });
    assert.deepEqual(changed.sort(), ['live-restore', 'log-opts', 'userland-proxy']);
  });

  it('changes nothing when the keys are set already', () => {
    const cur = { ...want, 'log-opts': { ...want['log-opts'], labels: 'team' }, debug: false };
    assert.deepEqual(mergeDaemonConfig(cur, want).changed, []);
  });

  it('tells reloadable keys from those that need a restart', () => {
    assert.ok(RELOADABLE_KEYS.has('live-restore'));
    assert.ok(!RELOADABLE_KEYS.has('userland-proxy'));
    assert.ok(!RELOADABLE_KEYS.has('log-opts'));
    assert.ok(!RELOADABLE_KEYS.has('data-root'));
  });

  it('reads absent and empty files as {} and refuses what is not a JSON object', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiver-daemon-json-'));
    assert.deepEqual(readDaemonConfig(join(dir, 'none.json')), { config: {}, existed: false });
    writeFileSync(join(dir, 'empty.json'), '\n');
    assert.deepEqual(readDaemonConfig(join(dir, 'empty.json')), { config: {}, existed: true });
    writeFileSync(join(dir, 'bad.json'), '{"debug": true,');
    assert.throws(() => readDaemonConfig(join(dir, 'bad.json')), (e: Error) => e instanceof BootstrapError && /bad\.json is not valid JSON .*nothing was changed/.test(e.message));
    writeFileSync(join(dir, 'array.json'), '[]');
    assert.throws(() => readDaemonConfig(join(dir, 'array.json')), /must hold a JSON object/);
  });
});

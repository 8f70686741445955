/**
 * The house rules (README "Architecture"), checked on the source: imports run one
 * way, the pure rooms do no I/O, and KiverError is the one error base.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/src/architecture.test.js → the repository's src/
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}
const sources = files(SRC).map((p) => ({ room: relative(SRC, p).split('/')[0], path: relative(SRC, p), text: readFileSync(p, 'utf8') }));
const importsOf = (f: { path: string; text: string }) =>
  [...f.text.matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gms)].map((m) => m[1]).filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, resolve(SRC, dirname(f.path), s)).split('/')[0]);

test('the server side never imports the CLI, the commands or the agent', () => {
  const server = new Set(['api', 'store', 'model', 'scheduler', 'client', 'controllers', 'server']);
  const bad = sources.filter((f) => server.has(f.room)).flatMap((f) =>
    importsOf(f).filter((room) => room === 'cli' || room === 'cmd' || room === 'agent').map((room) => `${f.path} imports ${room}/`));
  assert.deepEqual(bad, []);
});

test('the CLI, the agent and the simulated nodes reach the server only through client/ and model/', () => {
  const bad = sources.filter((f) => f.room === 'cli' || f.room === 'agent' || f.room === 'sim').flatMap((f) =>
    importsOf(f).filter((room) => room === 'api' || room === 'controllers' || room === 'server').map((room) => `${f.path} imports ${room}/`));
  assert.deepEqual(bad, []);
});

test('model/ and scheduler/ do no I/O', () => {
  const bad = sources.filter((f) => f.room === 'model' || f.room === 'scheduler').flatMap((f) =>
    [...f.text.matchAll(/from '(node:[a-z/_]+|dockerode|etcd3|better-sqlite3|fastify)'/g)].map((m) => `${f.path} imports ${m[1]}`));
  assert.deepEqual(bad, []);
});

test('KiverError is the only class that extends Error', () => {
  const bad = sources.flatMap((f) => [...f.text.matchAll(/class (\w+)(?:<[^>]*>)? extends Error\b/g)].map((m) => `${f.path}: ${m[1]}`));
  assert.deepEqual(bad, ['errors.ts: KiverError']);
});

#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests live next to the code
// (dist/src/**/*.test.js), integration tests under dist/test/**/*.test.js.
// Usage: node scripts/run-tests.js [unit|integration] [name-filter...]  (a file matching any filter runs)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const [which = 'all', ...filters] = process.argv.slice(2);
function find(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}
let files = [];
if (which === 'all' || which === 'unit') files = files.concat(find('dist/src'));
if (which === 'all' || which === 'integration') files = files.concat(find('dist/test'));
if (filters.length) files = files.filter((f) => filters.some((filter) => f.includes(filter)));
files.sort();
if (files.length === 0) { console.error('no test files found; run npm run build first'); process.exit(1); }
// One file at a time: integration tests share one Docker daemon and 2 cores.
const r = spawnSync(process.execPath, ['--test', '--test-force-exit', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);

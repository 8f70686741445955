#!/usr/bin/env node
// `npm run test:mutation [-- module...]`: StrykerJS on each named module of
// scripts/mutation-modules.js (all when none is named), one after another, each with its
// own report (reports/mutation/<module>.html|json). Exits non-zero when any module's
// score is under 80 % (Stryker's "high"). Not part of `npm test`: it is slow (see README).
// KIVER_MUTATION_CONCURRENCY sets Stryker's concurrency (default 1: the machine is shared).
import { spawnSync } from 'node:child_process';
import { MODULES } from './mutation-modules.js';

const names = process.argv.slice(2);
for (const n of names) if (!MODULES[n]) { console.error(`unknown module ${n}; one of ${Object.keys(MODULES).join(', ')}`); process.exit(2); }
const todo = names.length ? names : Object.keys(MODULES);
const failed = [];
for (const name of todo) {
  const t0 = Date.now();
  console.log(`\n== mutation testing: ${name} (${MODULES[name].mutate.join(', ')})`);
  const r = spawnSync('npx', ['stryker', 'run'], { stdio: 'inherit', env: { ...process.env, KIVER_MUTATION_MODULE: name } });
  console.log(`== ${name}: ${r.status === 0 ? 'score at or above 80 %' : 'FAILED'} in ${Math.round((Date.now() - t0) / 1000)} s`);
  if (r.status !== 0) failed.push(name);
}
if (failed.length) {
  console.error(`mutation score under 80 % (or Stryker failed) for: ${failed.join(', ')}`);
  process.exit(1);
}

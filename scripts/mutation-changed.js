#!/usr/bin/env node
// For CI: runs mutation testing only for the modules of scripts/mutation-modules.js whose
// mutated sources or tests the submitted commits changed, against a base revision
// (KIVER_MUTATION_BASE — .ci/run passes the last commit its CI passed on — else ORIG_HEAD,
// else HEAD~1).
//   node scripts/mutation-changed.js [--dry-run] [BASE]      (or KIVER_MUTATION_BASE=rev)
// Prints what it decided (--dry-run: only that); exits 0 when nothing in scope changed.
import { execFileSync, spawnSync } from 'node:child_process';
import { modulesFor } from './mutation-modules.js';

function git(...args) {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}
function exists(rev) {
  try { git('rev-parse', '--verify', '--quiet', `${rev}^{commit}`); return true; } catch { return false; }
}
const args = process.argv.slice(2);
const dryRun = args.includes('--dry-run');
const base = args.find((a) => a !== '--dry-run') ?? (process.env.KIVER_MUTATION_BASE || undefined) ?? ['ORIG_HEAD', 'HEAD~1'].find(exists);
if (!base || !exists(base)) {
  console.log(`mutation: no base revision (${base ?? 'none'}); nothing to compare, skipping`);
  process.exit(0);
}
const changed = git('diff', '--name-only', `${base}...HEAD`).split('\n').filter(Boolean);
const modules = [...new Set(changed.flatMap(modulesFor))];
if (modules.length === 0) {
  console.log(`mutation: no measured module changed since ${base} (${changed.length} files changed); skipping`);
  process.exit(0);
}
console.log(`mutation: ${modules.join(', ')} changed since ${base}`);
if (dryRun) process.exit(0);
const r = spawnSync(process.execPath, ['scripts/mutation.js', ...modules], { stdio: 'inherit' });
process.exit(r.status ?? 1);

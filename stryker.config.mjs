// StrykerJS for `npm run test:mutation` (scripts/mutation.js sets KIVER_MUTATION_MODULE).
// Mutants are switched at run time in one instrumented build; the tap runner runs the
// compiled node:test files (TAP) with per-file coverage, so a mutant runs only the test
// files that reach it. Concurrency 1 by default (the machine is shared), or the module's own
// (the store's tests mostly wait on lease timers, so several runners cost little CPU).
// KIVER_MUTATION_INCREMENTAL_DIR keeps each module's results there between runs (Stryker's
// incremental mode): a later run tests only mutants in changed code or reached by changed tests.
import { MODULES } from './scripts/mutation-modules.js';

const name = process.env.KIVER_MUTATION_MODULE ?? 'scheduler';
const mod = MODULES[name];
if (!mod) throw new Error(`unknown mutation module ${name}; one of ${Object.keys(MODULES).join(', ')}`);

const incrementalDir = process.env.KIVER_MUTATION_INCREMENTAL_DIR;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'tap',
  tap: { testFiles: mod.tests, nodeArgs: ['--test-reporter=tap', '-r', '{{hookFile}}', '{{testFile}}'] },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.mutation.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  buildCommand: 'npx tsc -p tsconfig.mutation.json',
  mutate: mod.mutate,
  coverageAnalysis: 'perTest',
  concurrency: Number(process.env.KIVER_MUTATION_CONCURRENCY ?? mod.concurrency ?? 1),
  timeoutMS: 10_000,
  thresholds: { high: 80, low: 60, break: 80 },
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  ignorePatterns: ['dist', 'reports', '.kiver-test', 'bench'],
  tempDirName: `.stryker-tmp/${name}`,
  cleanTempDir: true,
  incremental: Boolean(incrementalDir),
  incrementalFile: incrementalDir ? `${incrementalDir}/${name}.json` : undefined,
};

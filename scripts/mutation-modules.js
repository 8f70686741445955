// The modules measured by mutation testing (issue 17): the code whose bugs lose data or
// open doors. Each has the source it mutates (Stryker globs; `file:a-b` = lines a..b) and
// the compiled tests that must kill its mutants (run by the tap runner, one file at a time),
// and optionally its Stryker concurrency.
export const MODULES = {
  store: {
    mutate: ['src/store/sqlite.ts', 'src/store/json.ts', 'src/store/snapshot.ts', 'src/store/open.ts'],
    tests: ['dist/src/store/*.test.js'],
    concurrency: 4,
  },
  scheduler: {
    mutate: ['src/scheduler/placement.ts'],
    tests: ['dist/src/scheduler/*.test.js'],
  },
  auth: {
    mutate: ['src/api/auth.ts'],
    tests: ['dist/src/api/auth*.test.js'],
  },
  leader: {
    mutate: ['src/controllers/leader.ts'],
    tests: ['dist/src/controllers/leader*.test.js'],
  },
  ipam: {
    mutate: ['src/ipam/allocator.ts', 'src/ipam/pool-spec.ts', 'src/ipam/address.ts'],
    tests: ['dist/src/ipam/*.test.js'],
  },
  guard: {
    mutate: ['src/guard/safety.ts', 'src/guard/link-name.ts'],
    tests: ['dist/src/guard/*.test.js'],
  },
};

/**
 * Which modules a changed file belongs to (for scripts/mutation-changed.js): a file it
 * mutates, or one of its unit tests (src/x/y.test.ts compiles to dist/src/x/y.test.js).
 */
export function modulesFor(path) {
  const out = [];
  for (const [name, m] of Object.entries(MODULES)) {
    const sources = m.mutate.map((g) => g.split(':')[0]);
    const tests = m.tests.map((g) => new RegExp(`^${g.replace(/^dist\//, '').replace(/\./g, '\\.').replace(/\*/g, '[^/]*').replace(/\\.js$/, '\\.ts')}$`));
    if (sources.includes(path) || tests.some((re) => re.test(path))) out.push(name);
  }
  return out;
}

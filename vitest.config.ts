import { defineConfig } from 'vitest/config';

// One runner for the whole monorepo: unit tests live beside each package (`<pkg>/test`), cross-package
// end-to-end tests in the top-level `test/`. Benchmarks are not tests: they run with `npm run bench`.
export default defineConfig({
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'schemas/test/**/*.test.ts',
      'runner/test/**/*.test.ts',
      'mirror-sync/test/**/*.test.ts',
      'test/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores here: servers, sqlite and real tools (bazel, nix) are heavy, so keep parallelism modest.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});

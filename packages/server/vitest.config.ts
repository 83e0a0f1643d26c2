import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Vite's esbuild step skips .cts by default; core/pool-size.cts is CommonJS on purpose (the
  // launcher loads it before any ES module), and the tests import it through threadpool.ts.
  esbuild: { include: /\.([cm]?ts|[jt]sx)$/ },
  test: {
    // The synthetic clips come from the native package's setup (the project's own generator).
    globalSetup: ['../tabr-native/test/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
})

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // The synthetic clips come from the native package's setup (the project's own generator).
    globalSetup: ['../tabr-native/test/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
})

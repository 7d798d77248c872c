import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // One private Swift s3api for the run (scripts/swift-s3.mjs); see backends.test-support.ts.
    globalSetup: ['./scripts/swift-global-setup.ts'],
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the test images (mkfs.xfs with protofiles); later runs reuse them from
    // the cache in the OS temp directory.
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});

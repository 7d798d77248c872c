import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the test images (mke2fs, debugfs, random prefill); later runs reuse
    // them from the cache in the OS temp directory.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

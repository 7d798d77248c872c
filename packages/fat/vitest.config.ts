import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the test images (mkfs.fat, mtools, random prefill); later runs reuse
    // them from mkimage's cache.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

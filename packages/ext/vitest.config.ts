import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the test images (mke2fs, debugfs, random prefill); later runs reuse
    // them from the cache in the OS temp directory. Under CI turbo runs every package's tests at
    // once on few cores, so a cold build can take minutes.
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});

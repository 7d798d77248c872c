import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the test images (mkfs.btrfs --rootdir); later runs reuse them from the
    // mkimage cache.
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});

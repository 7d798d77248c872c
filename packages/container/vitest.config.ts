import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the container images with qemu-img; later runs reuse them from the
    // cache in the OS temp directory.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});

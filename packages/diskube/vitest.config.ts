import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Tests build real images with mke2fs/mkntfs and run backups; a busy 2-core CI box is slow.
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The mutation test builds a small image with mke2fs/debugfs.
    testTimeout: 60_000,
  },
});

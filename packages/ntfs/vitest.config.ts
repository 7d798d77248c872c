import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The first run builds the mkntfs images (cached afterwards in the OS temp directory).
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Each target builds its seed images with the real tools, then runs a few hundred cases.
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});

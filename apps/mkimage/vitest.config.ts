import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Builds run real mkfs tools; on a loaded 2-core CI box one can take several seconds.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

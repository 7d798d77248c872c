import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Property tests run a few hundred cases each; leave room for a loaded 2-core CI machine.
    testTimeout: 60_000,
  },
});

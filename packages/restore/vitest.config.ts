import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The damage sweeps open hundreds of backups; on a busy 2-core CI box they need headroom.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

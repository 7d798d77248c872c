import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Some tests build disk images with the mkimage DSL on first run (cached afterwards); under
    // CI every package's tests run at once and a cold build takes far longer than vitest's 5 s.
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
});

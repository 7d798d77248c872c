import { defineConfig } from 'vitest/config';

// Browser tests build disk images (cached) and start Chromium: seconds, not milliseconds.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});

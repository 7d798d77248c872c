import { defineConfig } from 'vitest/config';

// Image builds and whole backups take seconds each; fixtures are cached across runs.
export default defineConfig({ test: { testTimeout: 120_000, hookTimeout: 300_000 } });

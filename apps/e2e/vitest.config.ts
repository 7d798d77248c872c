import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Image builds and whole backups take seconds each; fixtures are cached across runs. Backups keep
// state digests in the per-user cache: the CLI runs get a cache of their own, not the user's.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    env: { DISKUBE_CACHE_DIR: mkdtempSync(join(tmpdir(), 'diskube-e2e-cache-')) },
  },
});

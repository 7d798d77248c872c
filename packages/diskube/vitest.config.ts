import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Tests build real images with mke2fs/mkntfs and run backups; a busy 2-core CI box is slow.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Backups keep state digests in the per-user cache: not the user's during tests.
    env: { DISKUBE_CACHE_DIR: mkdtempSync(join(tmpdir(), 'diskube-test-cache-')) },
  },
});

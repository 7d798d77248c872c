// Shared setup of the build tests: a private image cache and work directory per test file.
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { afterAll, beforeAll } from 'vitest';
import { buildAndVerify, scratchDir } from './testing.js';

/** Directories created before the file's tests and removed after them. */
export function scratchBuild() {
  const dirs = {
    cacheDir: '',
    work: '',
    /** Builds `spec` into the private cache and checks it (fsck, manifest hashes). */
    buildAndVerify: (spec: string) => buildAndVerify(spec, dirs.cacheDir, dirs.work),
  };
  beforeAll(async () => {
    dirs.cacheDir = await scratchDir();
    dirs.work = await scratchDir();
  });
  afterAll(async () => {
    await rm(dirs.cacheDir, { recursive: true, force: true });
    await rm(dirs.work, { recursive: true, force: true });
  });
  return dirs;
}

export const sha256File = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { randomBytes } from '@diskube/core/test';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import type { Backend } from './backend.js';
import {
  backupToRepository,
  forget,
  initRepository,
  listSnapshots,
  openRepository,
  type Repository,
  resolveSnapshot,
  restoreSnapshot,
  verifyRepository,
} from './index.js';
import { localBackend } from './local.js';
import { cacheUnder, directoryCache } from './node.js';

const BLOCK = 4096;
const SIZE = 64 * BLOCK;

/** A backend that counts GETs per first key segment. */
function countingGets(inner: Backend) {
  const gets = new Map<string, number>();
  const backend: Backend = {
    ...inner,
    location: inner.location,
    get: (k, s) => {
      const kind = k.split('/')[0]!;
      gets.set(kind, (gets.get(kind) ?? 0) + 1);
      return inner.get(k, s);
    },
  };
  return { backend, gets };
}

describe('the manifest cache (directoryCache)', () => {
  let dir: string;
  let cacheRoot: string;
  let repo: Repository;
  let gets: Map<string, number>;

  beforeEach(async () => {
    const root = await mkdtemp(join(inject('tmpRoot'), 'cache-'));
    dir = join(root, 'repo');
    cacheRoot = join(root, 'cache');
    await initRepository(localBackend(dir));
    const counted = countingGets(localBackend(dir));
    gets = counted.gets;
    repo = await openRepository(counted.backend, { cache: cacheUnder(cacheRoot) });
  });

  const backUp = (seed: number, name: string) => {
    const used = new Bitmap(SIZE / BLOCK).setRange(0, 16);
    return backupToRepository(repo, {
      source: memorySource(randomBytes(SIZE, seed)),
      used,
      blockSize: BLOCK,
      name,
    });
  };
  const cached = async () =>
    (await readdir(join(cacheRoot, repo.config.id, 'snapshots')).catch(() => [])).sort();

  it('lists snapshots and finds a parent without fetching a manifest twice', async () => {
    const a = await backUp(1, 'a');
    const b = await backUp(2, 'b');
    gets.clear();
    expect((await listSnapshots(repo)).map((s) => s.id).sort()).toEqual([a.id, b.id].sort());
    // a's manifest was cached when b's backup looked for a parent among the snapshots.
    expect(gets.get('snapshots')).toBe(1);
    expect(await cached()).toEqual([a.id, b.id].sort());
    gets.clear();
    expect((await listSnapshots(repo)).length).toBe(2);
    expect((await resolveSnapshot(repo, 'a@latest')).id).toBe(a.id);
    const again = await backUp(3, 'a'); // finds its parent among the cached manifests
    expect(again.parent).toBe(a.id);
    expect(gets.get('snapshots')).toBeUndefined();
  });

  it('passes over a damaged or failing cache, and forgotten snapshots leave it', async () => {
    const a = await backUp(1, 'a');
    await listSnapshots(repo);
    const file = join(cacheRoot, repo.config.id, 'snapshots', a.id);
    const bytes = await readFile(file);
    bytes[bytes.length - 3]! ^= 0x01;
    await writeFile(file, bytes);
    gets.clear();
    expect((await resolveSnapshot(repo, 'a@latest')).id).toBe(a.id);
    expect(gets.get('snapshots')).toBe(1); // fetched again, and the copy replaced
    expect(Buffer.compare(await readFile(file), bytes)).not.toBe(0);

    const failing = await openRepository(localBackend(dir), {
      cache: () => ({
        get: () => Promise.reject(new Error('cache down')),
        put: () => Promise.reject(new Error('cache down')),
        delete: () => Promise.reject(new Error('cache down')),
        retain: () => Promise.reject(new Error('cache down')),
      }),
    });
    expect((await listSnapshots(failing)).map((s) => s.id)).toEqual([a.id]);

    const b = await backUp(2, 'a');
    await listSnapshots(repo);
    expect(await cached()).toEqual([a.id, b.id].sort());
    await forget(repo, { keepLast: 1 });
    await listSnapshots(repo);
    expect(await cached()).toEqual([b.id]);
  });

  it("verify and restore read the repository's manifest, not the cached copy", async () => {
    const a = await backUp(1, 'a');
    await listSnapshots(repo);
    const key = join(dir, 'snapshots', a.id);
    const bytes = await readFile(key);
    bytes[bytes.length - 3]! ^= 0x01;
    await writeFile(key, bytes);
    const result = await verifyRepository(repo);
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => p.key)).toEqual([`snapshots/${a.id}`]);
    // Restore finds the snapshot through the cache, then refuses the repository's damaged copy.
    expect((await resolveSnapshot(repo, 'a@latest')).id).toBe(a.id);
    const target = {
      size: SIZE,
      zeroed: true,
      write: async () => {},
      finish: async () => {},
      abort: async () => {},
    };
    await expect(restoreSnapshot(repo, { snapshot: 'a@latest', target })).rejects.toMatchObject({
      code: 'CORRUPT',
    });
  });

  it('keeps no cache for a repository id that is no plain name', async () => {
    expect(cacheUnder(cacheRoot)({ ...repo.config, id: '../elsewhere' })).toBeUndefined();
    expect(cacheUnder(cacheRoot)(repo.config)).toBeDefined();
    await expect(directoryCache(cacheRoot).get('../x')).rejects.toThrow('bad cache key');
  });
});

import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { randomBytes } from '@diskube/core/test';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import type { Backend } from './backend.js';
import { blockDigests, changedBlocks, changedBlocksByDigest, PATCH_BLOCK } from './chunks.js';
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

describe('the block digest cache', () => {
  const CHUNK = 16 * BLOCK;
  const DISK = 8 * CHUNK;
  const used = new Bitmap(DISK / BLOCK).setRange(0, DISK / BLOCK);

  /** `bytes` with each of `blocks` rewritten with new random bytes (seeded by `seed`). */
  const rewrite = (bytes: Uint8Array, blocks: number[], seed: number) => {
    const next = bytes.slice();
    for (const [k, b] of blocks.entries()) next.set(randomBytes(BLOCK, seed * 1000 + k), b * BLOCK);
    return next;
  };

  /** A repository with the cache or not, on a directory taken for a remote store or not. */
  const open = async (withCache: boolean, remote = true) => {
    const root = await mkdtemp(join(inject('tmpRoot'), 'digests-'));
    await initRepository(localBackend(join(root, 'repo')), { chunkSize: CHUNK });
    const counted = countingGets(localBackend(join(root, 'repo')));
    const repo = await openRepository(
      { ...counted.backend, remote },
      {
        ...(withCache ? { cache: cacheUnder(join(root, 'cache')) } : {}),
      },
    );
    return { repo, gets: counted.gets, cacheDir: join(root, 'cache', repo.config.id) };
  };

  const backUpInto = (repo: Repository, bytes: Uint8Array) =>
    backupToRepository(repo, { source: memorySource(bytes), used, blockSize: BLOCK, name: 'vm' });

  const restored = async (repo: Repository, snapshot: string) => {
    const out = new Uint8Array(DISK);
    await restoreSnapshot(repo, {
      snapshot,
      target: {
        size: DISK,
        zeroed: true,
        write: async (offset, data) => void out.set(data, offset),
        finish: async () => {},
        abort: async () => {},
      },
    });
    return out;
  };

  // Day 0, then three days: blocks in chunks 0 and 1 change on days 1 and 2 (chunk 0 twice), a
  // block of chunk 6 first changes on day 2; on day 3 chunk 0 again and most of chunk 1 (stored
  // whole).
  const day0 = randomBytes(DISK, 1);
  const day1 = rewrite(day0, [3, 20], 2);
  const day2 = rewrite(day1, [3, 21, 100], 3);
  const day3 = rewrite(day2, [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 4], 4);
  const days = [day0, day1, day2, day3];

  it('makes the patches of chunks that changed before without fetching them, the same as without a cache', async () => {
    const cached = await open(true);
    const plain = await open(false);
    const fetched = (gets: Map<string, number>) =>
      (gets.get('chunks') ?? 0) + (gets.get('patches') ?? 0);
    const perDay: Array<{ cached: number; plain: number }> = [];
    for (const bytes of days) {
      cached.gets.clear();
      plain.gets.clear();
      const a = await backUpInto(cached.repo, bytes);
      const b = await backUpInto(plain.repo, bytes);
      // The same patches and whole chunks: every index object is the same.
      expect(a.snapshot.indexes).toEqual(b.snapshot.indexes);
      expect([a.newChunks, a.newPatches, a.newStoredBytes]).toEqual([
        b.newChunks,
        b.newPatches,
        b.newStoredBytes,
      ]);
      perDay.push({ cached: fetched(cached.gets), plain: fetched(plain.gets) });
      expect(Buffer.compare(await restored(cached.repo, a.id), bytes)).toBe(0);
    }
    // Without a cache every changed chunk's parent chain is fetched, each of its objects: day 2
    // 2 + 2 + 1, day 3 3 + 3. With it: day 1 fetches the day-0 chunks (never stored over a
    // parent, so no table yet); day 2 only chunk 6's; day 3 none (the tables of chunks 0 and 1
    // were kept on day 2), though chunk 1 is then stored whole.
    expect(perDay.map((d) => d.plain)).toEqual([0, 2, 5, 6]);
    expect(perDay.map((d) => d.cached)).toEqual([0, 2, 1, 0]);
  });

  it("keeps a template's tables, so only the first clone backed up against it fetches its chunks", async () => {
    const { repo, gets } = await open(true);
    const t = await backupToRepository(repo, {
      source: memorySource(day0),
      used,
      blockSize: BLOCK,
      name: 't',
    });
    const clone = (bytes: Uint8Array, name: string) =>
      backupToRepository(repo, {
        source: memorySource(bytes),
        used,
        blockSize: BLOCK,
        name,
        parent: t.id,
      });
    gets.clear();
    const a = await clone(day1, 'a'); // chunks 0 and 1 patched over the template's
    expect([a.newPatches, gets.get('chunks')]).toEqual([2, 2]);
    gets.clear();
    const b = await clone(rewrite(day0, [5, 17], 7), 'b');
    expect([b.newPatches, gets.get('chunks')]).toEqual([2, undefined]);
  });

  it('keeps no tables for a local directory, where reading a chunk costs less', async () => {
    const { repo, gets, cacheDir } = await open(true, false);
    await backUpInto(repo, day0);
    await backUpInto(repo, day1);
    gets.clear();
    await backUpInto(repo, day2);
    expect(gets.get('chunks')).toBe(3);
    expect(await readdir(join(cacheDir, 'digests')).catch(() => [])).toEqual([]);
    expect(await readdir(join(cacheDir, 'snapshots'))).not.toEqual([]); // the manifests' copies
  });

  it('passes over a damaged copy of a table and fetches the chunk instead', async () => {
    const { repo, gets, cacheDir } = await open(true);
    await backUpInto(repo, day0);
    await backUpInto(repo, day1);
    const folder = join(cacheDir, 'digests');
    const files: string[] = [];
    for (const sub of await readdir(folder))
      for (const name of await readdir(join(folder, sub))) files.push(join(folder, sub, name));
    expect(files.length).toBe(2); // chunks 0 and 1 of day 1 (the VM's own day-0 chunks are not kept)
    for (const file of files) {
      const bytes = await readFile(file);
      bytes[7]! ^= 0x01;
      await writeFile(file, bytes);
    }
    gets.clear();
    const b = await backUpInto(repo, day2);
    expect(gets.get('chunks')).toBe(3); // chunks 0, 1 and 6: every damaged table was refused
    expect(b.newPatches).toBe(3);
    expect(Buffer.compare(await restored(repo, b.id), day2)).toBe(0);
  });

  it('a backup drops the tables not written for 30 days, at most once a day', async () => {
    const { repo, cacheDir } = await open(true);
    await backUpInto(repo, day0);
    await backUpInto(repo, day1); // two tables: chunks 0 and 1 of day 1
    const folder = join(cacheDir, 'digests');
    const tables = async () => {
      const files: string[] = [];
      for (const sub of await readdir(folder))
        for (const name of await readdir(join(folder, sub))) files.push(join(folder, sub, name));
      return files.sort();
    };
    const [oldest, ...rest] = await tables();
    expect(rest.length).toBe(1);
    const longAgo = new Date(Date.now() - 31 * 24 * 3600 * 1000);
    await utimes(oldest!, longAgo, longAgo);
    // The first backups swept an empty cache a moment ago: not again within a day.
    await backUpInto(repo, day1);
    expect((await tables()).length).toBe(2);
    // A day later (the mark moved back), the old table goes and the others stay.
    await writeFile(join(cacheDir, 'digests-swept'), String(Date.now() - 25 * 3600 * 1000));
    await backUpInto(repo, day1);
    expect(await tables()).toEqual(rest);
  });

  it("a table holds the first 16 bytes of each 4 KiB block's SHA-256, through Node and WebCrypto alike", async () => {
    const content = randomBytes(3 * PATCH_BLOCK + 10, 9);
    const expected = Buffer.concat(
      [0, 1, 2, 3].map((b) =>
        createHash('sha256')
          .update(content.subarray(b * PATCH_BLOCK, (b + 1) * PATCH_BLOCK))
          .digest()
          .subarray(0, 16),
      ),
    );
    expect(Buffer.from(await blockDigests(content))).toEqual(expected);
    expect(Buffer.from(await blockDigests(content, true))).toEqual(expected);
  });

  it('finds the same changed blocks from tables as from the bytes, short last block included', async () => {
    for (const length of [CHUNK, CHUNK - 100, 3 * PATCH_BLOCK + 1]) {
      const base = randomBytes(length, length);
      const count = Math.ceil(length / PATCH_BLOCK);
      for (const changed of [
        [],
        [0],
        [count - 1],
        [0, count - 1],
        Array.from({ length: count }, (_, i) => i),
      ]) {
        const next = base.slice();
        for (const b of changed) next[Math.min(length - 1, b * PATCH_BLOCK + 5)]! ^= 0xff;
        const expected = changedBlocks(base, next);
        expect(
          changedBlocksByDigest(await blockDigests(base), await blockDigests(next), length),
        ).toEqual(expected);
        if (changed.length <= 1) expect(expected).toEqual(changed);
      }
    }
  });
});

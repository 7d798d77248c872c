import { mkdtemp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, memorySource } from '@diskube/core';
import { randomBytes } from '@diskube/core/test';
import { beforeEach, describe, expect, inject, it, vi } from 'vitest';
import type { Backend } from './backend.js';
import { TEST_BACKENDS } from './backends.test-support.js';
import { MAX_PATCH_DEPTH } from './chunks.js';
import {
  acquireLock,
  backupToRepository,
  DEFAULT_CHUNK_SIZE,
  forget,
  initRepository,
  LOST_AFTER_MS,
  listLocks,
  listSnapshots,
  OBJECT_STORE_CHUNK_SIZE,
  openRepository,
  prune,
  REPOSITORY_VERSION,
  type Repository,
  type RestoreSink,
  restoreSnapshot,
  STALE_AFTER_MS,
  stats,
  unlockRepository,
  verifyRepository,
} from './index.js';
import { cacheUnder, processOwner } from './node.js';
import { encodeObject, ObjectType } from './object.js';
import { encodeJson, getObject, putObject } from './repository.js';
import { readManifest } from './snapshots.js';

const CHUNK = 64 * 1024;
const BLOCK = 4096;
const SIZE = 16 * CHUNK + 3 * BLOCK + 512; // a partial last chunk and a 512-byte tail

/** A disk of random bytes (the "garbage" differs per seed) with a used map of some blocks. */
function disk(seed: number, used: Bitmap, content: (offset: number) => number): Uint8Array {
  const bytes = randomBytes(SIZE, seed);
  used.forEachRun((b, n) => {
    for (let o = b * BLOCK; o < (b + n) * BLOCK; o++) bytes[o] = content(o);
  });
  for (let o = used.length * BLOCK; o < SIZE; o++) bytes[o] = content(o); // the tail is kept
  return bytes;
}

function usedMap(): Bitmap {
  const used = new Bitmap(Math.floor(SIZE / BLOCK));
  used.setRange(0, 20); // chunks 0-1
  used.setRange(64, 3); // chunk 4
  used.setRange(200, 40); // chunks 12-14
  used.set(used.length - 1); // the last, partial chunk (with the used 512-byte tail)
  return used;
}
/** Chunks 0, 1, 4, 12, 13, 14 and 16 hold used blocks. */
const USED_CHUNKS = 7;

/** What a restore must give back: used blocks and the used tail; zeros elsewhere. */
function expected(bytes: Uint8Array, used: Bitmap): Uint8Array {
  const out = new Uint8Array(bytes.length);
  used.forEachRun((b, n) => out.set(bytes.subarray(b * BLOCK, (b + n) * BLOCK), b * BLOCK));
  out.set(bytes.subarray(used.length * BLOCK), used.length * BLOCK);
  return out;
}

function sink(size: number) {
  const bytes = new Uint8Array(size);
  const state = { finished: false, aborted: false, writes: new Map<number, number>() };
  const target: RestoreSink = {
    size,
    zeroed: true,
    async write(offset, data) {
      for (let o = offset; o < offset + data.length; o += BLOCK / 8)
        state.writes.set(o, (state.writes.get(o) ?? 0) + 1);
      bytes.set(data, offset);
    },
    async finish() {
      state.finished = true;
    },
    async abort() {
      state.aborted = true;
    },
  };
  return { bytes, state, target };
}

/** A source that records what was read. */
function counting(source: BlockSource) {
  const reads: Array<[number, number]> = [];
  return {
    reads,
    source: {
      size: source.size,
      read(offset: number, dst: Uint8Array) {
        reads.push([offset, dst.length]);
        return source.read(offset, dst);
      },
    } satisfies BlockSource,
  };
}

/** A backend that counts HEAD and PUT requests (the lock's HEAD before a commit apart). */
function countingBackend(inner: Backend) {
  const count = { head: 0, lockHead: 0, put: 0, list: 0 };
  const backend: Backend = {
    ...inner,
    location: inner.location,
    head: (k, s) => {
      if (k.startsWith('locks/')) count.lockHead++;
      else count.head++;
      return inner.head(k, s);
    },
    put: (k, d, s) => {
      if (k.startsWith('chunks/') || k.startsWith('patches/')) count.put++;
      return inner.put(k, d, s);
    },
    get: (k, s) => inner.get(k, s),
    getRange: (k, o, l, s) => inner.getRange(k, o, l, s),
    list: (p, s) => {
      count.list++;
      return inner.list(p, s);
    },
    delete: (k, s) => inner.delete(k, s),
  };
  return { backend, count };
}

/**
 * A backend whose GETs take a few milliseconds and record how many run at once, in all and per
 * first key segment (`index`, `snapshots`, ...).
 */
function inFlightBackend(inner: Backend) {
  const gets = {
    now: 0,
    most: 0,
    nowOf: new Map<string, number>(),
    mostOf: new Map<string, number>(),
  };
  const backend: Backend = {
    ...inner,
    location: inner.location,
    get: async (k, s) => {
      const kind = k.split('/')[0]!;
      const of = (gets.nowOf.get(kind) ?? 0) + 1;
      gets.nowOf.set(kind, of);
      gets.mostOf.set(kind, Math.max(gets.mostOf.get(kind) ?? 0, of));
      gets.now++;
      gets.most = Math.max(gets.most, gets.now);
      try {
        await new Promise((resolve) => setTimeout(resolve, 3));
        return await inner.get(k, s);
      } finally {
        gets.now--;
        gets.nowOf.set(kind, gets.nowOf.get(kind)! - 1);
      }
    },
  };
  return { backend, gets };
}

let repo: Repository;

/** Every key under `prefix`, sorted. */
async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const info of repo.backend.list(prefix)) out.push(info.key);
  return out.sort();
}

const content = (o: number) => (o * 7 + (o >> 12)) & 0xff;

/** Back up `bytes` as VM `name` into `into` (default the test's repository). */
function backUp(bytes: Uint8Array, used: Bitmap, name: string, into: Repository = repo) {
  return backupToRepository(into, { source: memorySource(bytes), used, blockSize: BLOCK, name });
}

/** Restore `snapshot` and expect the used bytes of `bytes`, zeros elsewhere. */
async function expectRestores(snapshot: string, bytes: Uint8Array, used: Bitmap) {
  const out = sink(SIZE);
  await restoreSnapshot(repo, { snapshot, target: out.target });
  expect(out.state.finished).toBe(true);
  expect(Buffer.compare(out.bytes, expected(bytes, used))).toBe(0);
  return out;
}

describe.each(TEST_BACKENDS)('$name backend', (b) => {
  beforeEach(async () => {
    if (b.skip) return;
    repo = await initRepository(await b.make(), { chunkSize: CHUNK, owner: processOwner() });
  });

  describe('backup and restore', () => {
    it.skipIf(b.skip)(
      'restores used blocks byte-identical, zeros elsewhere, each block written once',
      async () => {
        const used = usedMap();
        const bytes = disk(1, used, content);
        const { reads, source } = counting(memorySource(bytes));
        const result = await backupToRepository(repo, {
          source,
          used,
          blockSize: BLOCK,
          name: 'vm1',
        });
        // Only used bytes are read: no read touches an unused block.
        for (const [offset, length] of reads) {
          for (let b = Math.floor(offset / BLOCK); b < Math.ceil((offset + length) / BLOCK); b++) {
            expect(b >= used.length || used.get(b)).toBe(true);
          }
        }
        expect(result.chunkCount).toBe(Math.ceil(SIZE / CHUNK));
        expect(result.zeroChunks).toBe(result.chunkCount - USED_CHUNKS);
        const out = sink(SIZE);
        await restoreSnapshot(repo, { snapshot: 'vm1@latest', target: out.target });
        expect(out.state.finished).toBe(true);
        expect(Buffer.compare(out.bytes, expected(bytes, used))).toBe(0);
        expect(Math.max(...out.state.writes.values())).toBe(1);
      },
    );

    it.skipIf(b.skip)('two clones with different garbage share every chunk', async () => {
      const used = usedMap();
      const first = await backupToRepository(repo, {
        source: memorySource(disk(1, used, content)),
        used,
        blockSize: BLOCK,
        name: 'a',
      });
      const second = await backupToRepository(repo, {
        source: memorySource(disk(2, used, content)),
        used,
        blockSize: BLOCK,
        name: 'b',
      });
      expect(first.newChunks).toBe(USED_CHUNKS);
      expect(second.newChunks).toBe(0);
      expect(second.chunksDeduplicated).toBe(USED_CHUNKS);
      const s = await stats(repo);
      expect(s.vms.a!.usedBytes).toBe(s.vms.b!.usedBytes);
      expect(s.total.chunks).toBe(USED_CHUNKS);
      expect(s.total.dedupRatio).toBeGreaterThan(1.5);
    });

    it.skipIf(b.skip)(
      'a backup without a parent looks chunks up in one listing when that is cheaper than HEADs',
      async () => {
        const used = usedMap();
        const counted = countingBackend(repo.backend);
        const via = { ...repo, backend: counted.backend };
        // An empty repository: one listing, no HEAD, every chunk uploaded.
        const first = await backUp(disk(1, used, content), used, 'a', via);
        expect(first.newChunks).toBe(USED_CHUNKS);
        expect(counted.count).toMatchObject({ head: 0, put: USED_CHUNKS });
        // A clone: every chunk found in the listing, nothing uploaded.
        const second = await backUp(disk(2, used, content), used, 'b', via);
        expect(second.chunksDeduplicated).toBe(USED_CHUNKS);
        expect(counted.count).toMatchObject({ head: 0, put: USED_CHUNKS });
        // 250 more chunk keys: a VM with one used block and the used tail (two chunks) may list
        // 250 keys (one page per 8 chunks), so it stops listing and HEADs its two chunks.
        for (let i = 0; i < 250; i++)
          await repo.backend.put(
            `chunks/ff/ff${i.toString(16).padStart(62, '0')}`,
            new Uint8Array(1),
          );
        const one = new Bitmap(used.length).set(3);
        const bytes = disk(3, one, (o) => (o * 11) & 0xff);
        const third = await backUp(bytes, one, 'c', via);
        expect(third.newChunks).toBe(2);
        expect(counted.count).toMatchObject({ head: 2, put: USED_CHUNKS + 2 });
        await expectRestores('a@latest', disk(1, used, content), used);
        await expectRestores('b@latest', disk(2, used, content), used);
        await expectRestores('c@latest', bytes, one);
      },
    );

    it.skipIf(b.skip)(
      'a backup against its parent uploads and HEADs only changed chunks',
      async () => {
        const used = usedMap();
        const bytes = disk(1, used, content);
        await backUp(bytes, used, 'vm');
        bytes[201 * BLOCK + 5] = 0x5a ^ bytes[201 * BLOCK + 5]!; // chunk 12
        const counted = countingBackend(repo.backend);
        const again = { ...repo, backend: counted.backend };
        const result = await backUp(bytes, used, 'vm', again);
        // One byte changed: a patch over the parent's chunk, not a whole chunk.
        expect(result.newChunks).toBe(0);
        expect(result.newPatches).toBe(1);
        expect(result.newStoredBytes).toBeLessThan(BLOCK * 2);
        expect(counted.count.head).toBe(1);
        expect(counted.count.lockHead).toBe(1); // the lock is still ours before the manifest
        expect(counted.count.put).toBe(1);
        expect(result.chunksFromParent).toBe(USED_CHUNKS - 1);
        await expectRestores(result.id, bytes, used);
      },
    );

    it.skipIf(b.skip)(
      "clones making the same change over a template's chunk store its patch once",
      async () => {
        const used = usedMap();
        const template = disk(1, used, content);
        const t = await backUp(template, used, 'template');
        // Both clones change the same byte of chunk 12; the second also changes chunk 4.
        const clone = template.slice();
        clone[201 * BLOCK + 5] = 0x5a ^ clone[201 * BLOCK + 5]!;
        const other = clone.slice();
        other[66 * BLOCK + 7] = 0xa5 ^ other[66 * BLOCK + 7]!;
        const asClone = (bytes: Uint8Array, name: string, into: Repository) =>
          backupToRepository(into, {
            source: memorySource(bytes),
            used,
            blockSize: BLOCK,
            name,
            parent: t.id,
          });
        const first = await asClone(clone, 'a', repo);
        expect([first.newPatches, first.chunksDeduplicated]).toEqual([1, 0]);
        const counted = countingBackend(repo.backend);
        const second = await asClone(other, 'b', { ...repo, backend: counted.backend });
        // Chunk 12's patch is found by its key: not fetched, not uploaded again.
        expect([second.newPatches, second.chunksDeduplicated]).toEqual([1, 1]);
        expect(counted.count.put).toBe(1);
        await expectRestores(first.id, clone, used);
        await expectRestores(second.id, other, used);
      },
    );

    it.skipIf(b.skip)('with changed ranges only the touched chunks are read', async () => {
      const used = usedMap();
      const bytes = disk(1, used, content);
      await backUp(bytes, used, 'vm');
      bytes[65 * BLOCK] = 0x01 ^ bytes[65 * BLOCK]!; // chunk 4
      const { reads, source } = counting(memorySource(bytes));
      const result = await backupToRepository(repo, {
        source,
        used,
        blockSize: BLOCK,
        name: 'vm',
        changedRanges: [[65 * BLOCK, 100]],
      });
      expect(result.chunksRead).toBe(1);
      for (const [offset] of reads) expect(Math.floor(offset / CHUNK)).toBe(4);
      await expectRestores(result.id, bytes, used);
    });

    it.skipIf(b.skip)(
      'an interrupted backup leaves no snapshot; prune collects its chunks',
      async () => {
        const used = usedMap();
        const controller = new AbortController();
        // Interrupted once the first chunk is durable, so that orphans exist whatever the
        // backend's latency (aborting on a read count left none behind on S3).
        const inner = repo.backend;
        const interrupting: Backend = {
          location: inner.location,
          get: (k, s) => inner.get(k, s),
          getRange: (k, o, l, s) => inner.getRange(k, o, l, s),
          head: (k, s) => inner.head(k, s),
          list: (p, s) => inner.list(p, s),
          delete: (k, s) => inner.delete(k, s),
          async put(k, d, s) {
            await inner.put(k, d, s);
            if (k.startsWith('chunks/')) controller.abort();
          },
        };
        await expect(
          backupToRepository(await openRepository(interrupting), {
            source: memorySource(disk(1, used, content)),
            used,
            blockSize: BLOCK,
            name: 'vm',
            signal: controller.signal,
          }),
        ).rejects.toThrow();
        expect(await listSnapshots(repo)).toEqual([]);
        expect((await verifyRepository(repo, { readData: true })).ok).toBe(true);
        const orphans = await keys('chunks/');
        expect(orphans.length).toBeGreaterThan(0);
        const pruned = await prune(repo);
        expect(pruned.deletedChunks).toBe(orphans.length);
      },
    );
  });

  describe('damage is caught', () => {
    async function backedUp() {
      const used = usedMap();
      const result = await backupToRepository(repo, {
        source: memorySource(disk(1, used, content)),
        used,
        blockSize: BLOCK,
        name: 'vm',
      });
      return result;
    }

    async function flip(key: string, at: number) {
      const bytes = Uint8Array.from(await repo.backend.get(key));
      bytes[Math.min(at, bytes.length - 1)]! ^= 0x10;
      await repo.backend.put(key, bytes);
    }

    it.skipIf(b.skip)(
      'a manifest whose used map is longer than its disk is CORRUPT bad-manifest, not allocated',
      async () => {
        const { id } = await backedUp();
        const bytes = await getObject(repo, ObjectType.manifest, id, (k) => `snapshots/${k}`);
        const m = JSON.parse(new TextDecoder().decode(bytes));
        // 2^40 blocks on the same disk, with as many used-map pieces as that needs: the digest
        // is right (written by a writer that lies), so only the size check can refuse it.
        m.usedBlockCount = 2 ** 40;
        m.usedMaps = Array.from({ length: 2 ** 15 }, () => m.usedMaps[0]);
        const forged = await putObject(
          repo,
          ObjectType.manifest,
          encodeJson(m),
          (k) => `snapshots/${k}`,
        );
        await expect(readManifest(repo, forged.id, undefined, true)).rejects.toMatchObject({
          code: 'CORRUPT',
          reason: 'bad-manifest',
          message: expect.stringMatching(/1099511627776 used-map blocks/),
        });
      },
    );

    it.skipIf(b.skip)(
      'a flipped bit in a chunk: verify names it and the snapshot; restore is CORRUPT and aborted',
      async () => {
        const result = await backedUp();
        const chunk = (await keys('chunks/'))[0]!;
        await flip(chunk, 40);
        const quick = await verifyRepository(repo);
        expect(quick.ok).toBe(true); // without --read-data chunks are only listed
        const report = await verifyRepository(repo, { readData: true });
        expect(report.ok).toBe(false);
        expect(report.problems).toHaveLength(1);
        expect(report.problems[0]!.key).toBe(chunk);
        expect(report.problems[0]!.snapshots).toEqual([result.id]);
        const out = sink(SIZE);
        await expect(
          restoreSnapshot(repo, { snapshot: 'vm@latest', target: out.target }),
        ).rejects.toMatchObject({
          code: 'CORRUPT',
        });
        expect(out.state.aborted).toBe(true);
        expect(out.state.finished).toBe(false);
      },
    );

    it.skipIf(b.skip)(
      'a flipped bit in a manifest: verify names it; restore by id is CORRUPT',
      async () => {
        const result = await backedUp();
        await flip(`snapshots/${result.id}`, 60);
        const report = await verifyRepository(repo);
        expect(report.ok).toBe(false);
        expect(report.problems[0]).toMatchObject({
          key: `snapshots/${result.id}`,
          kind: 'damaged',
        });
        await expect(
          restoreSnapshot(repo, { snapshot: result.id, target: sink(SIZE).target }),
        ).rejects.toMatchObject({ code: 'CORRUPT' });
      },
    );

    it.skipIf(b.skip)('a deleted chunk: verify reports it missing with its snapshot', async () => {
      const result = await backedUp();
      const chunk = (await keys('chunks/'))[0]!;
      await repo.backend.delete(chunk);
      const report = await verifyRepository(repo);
      expect(report.problems).toMatchObject([
        { kind: 'missing', key: chunk, snapshots: [result.id] },
      ]);
    });

    it.skipIf(b.skip)(
      'a newer format version is refused with UNSUPPORTED repository-version',
      async () => {
        const config = new TextEncoder().encode(
          JSON.stringify({
            format: 'diskube-repository',
            version: REPOSITORY_VERSION + 1,
            chunkSize: CHUNK,
            id: 'x',
            created: '',
          }),
        );
        await repo.backend.put('config', encodeObject(ObjectType.config, config, null));
        await expect(openRepository(repo.backend)).rejects.toMatchObject({
          code: 'UNSUPPORTED',
          reason: 'repository-version',
        });
      },
    );
  });

  describe('the block digest cache', () => {
    it.skipIf(b.skip)(
      'keeps tables on S3 only: there a day backup fetches no chunk that changed the day before',
      async () => {
        expect(repo.backend.remote === true).toBe(b.name === 's3');
        const inner = repo.backend;
        let fetched = 0;
        const backend: Backend = {
          ...inner,
          get: (k, s) => {
            if (k.startsWith('chunks/') || k.startsWith('patches/')) fetched++;
            return inner.get(k, s);
          },
        };
        const cacheRoot = await mkdtemp(join(inject('tmpRoot'), 'tables-'));
        const cached = await openRepository(backend, {
          cache: cacheUnder(cacheRoot),
          owner: processOwner(),
        });
        const used = usedMap();
        const flip = (bytes: Uint8Array, offsets: number[]) => {
          const next = bytes.slice();
          for (const o of offsets) next[o]! ^= 0xff;
          return next;
        };
        // Chunk 0 and the partial last chunk (its used block and the tail) change every day.
        const day0 = disk(1, used, content);
        const day1 = flip(day0, [100, SIZE - 10, SIZE - 600]);
        const day2 = flip(day1, [5 * BLOCK + 1, SIZE - 20, SIZE - 700]);
        await backUp(day0, used, 'vm', cached);
        await backUp(day1, used, 'vm', cached);
        fetched = 0;
        const last = await backUp(day2, used, 'vm', cached);
        expect(last.newPatches).toBe(2);
        expect(fetched).toBe(b.name === 's3' ? 0 : 4); // else each chain: a patch and its base
        const tables = await readdir(join(cacheRoot, repo.config.id, 'digests')).catch(() => []);
        expect(tables.length > 0).toBe(b.name === 's3');
        await expectRestores(last.id, day2, used);
      },
    );
  });

  describe('a new repository', () => {
    it.skipIf(b.skip)(
      "takes the backend's chunk size unless one is named: 4 MiB on S3, 1 MiB on a directory",
      async () => {
        const fresh = await initRepository(await b.make());
        expect(fresh.config.chunkSize).toBe(
          b.name === 's3' ? OBJECT_STORE_CHUNK_SIZE : DEFAULT_CHUNK_SIZE,
        );
        expect(OBJECT_STORE_CHUNK_SIZE).toBe(4 * DEFAULT_CHUNK_SIZE);
        // The chunk size is the config's, whatever backend later opens it.
        expect((await openRepository(fresh.backend)).config.chunkSize).toBe(fresh.config.chunkSize);
        const named = await initRepository(await b.make(), { chunkSize: 256 * 1024 });
        expect(named.config.chunkSize).toBe(256 * 1024);
      },
    );
  });

  describe('patches', () => {
    /** Change one byte in chunk 4 and one in chunk 12 (`step` picks which). */
    const touch = (bytes: Uint8Array, step: number) => {
      bytes[65 * BLOCK + step]! ^= 0x5a;
      bytes[201 * BLOCK + step]! ^= 0xa5;
    };

    it.skipIf(b.skip)(
      "a chain's objects are fetched at once; manifests and index objects several at a time",
      async () => {
        const used = usedMap();
        const bytes = disk(1, used, content);
        await backUp(bytes, used, 'vm');
        for (let d = 1; d <= 4; d++) {
          touch(bytes, d);
          await backUp(bytes, used, 'vm');
        }
        // One chunk at a time, yet a chain of four patches over a whole chunk is one round trip.
        const serial = inFlightBackend(repo.backend);
        await restoreSnapshot(
          { ...repo, backend: serial.backend, concurrency: 1 },
          { snapshot: 'vm@latest', target: sink(SIZE).target },
        );
        expect(serial.gets.most).toBe(5);
        // Four at a time: the five manifests, and the index objects that verify scans.
        const wide = inFlightBackend(repo.backend);
        const via = { ...repo, backend: wide.backend, concurrency: 4 };
        expect(await listSnapshots(via)).toHaveLength(5);
        expect(wide.gets.mostOf.get('snapshots')).toBe(4);
        expect((await verifyRepository(via)).ok).toBe(true);
        expect(wide.gets.mostOf.get('index')).toBe(4);
        await expectRestores('vm@latest', bytes, used);
      },
    );

    it.skipIf(b.skip)(
      'changed blocks become patches over the parent chunk; past the depth limit, over the whole chunk below; forgetting the parents keeps every base',
      async () => {
        const used = usedMap();
        const bytes = disk(1, used, content);
        const snapshots = [await backUp(bytes, used, 'vm')];
        const states = [bytes.slice()];
        for (let d = 1; d <= MAX_PATCH_DEPTH + 1; d++) {
          touch(bytes, d);
          const result = await backUp(bytes, used, 'vm');
          // Two changed chunks, each a patch; step MAX + 1 patches the whole chunk of step 0
          // (both changes since it), so its chain is one deep again.
          expect([result.newPatches, result.newChunks], `step ${d}`).toEqual([2, 0]);
          expect(result.newStoredBytes).toBeLessThan(4 * BLOCK);
          snapshots.push(result);
          states.push(bytes.slice());
        }
        const patchCount = 2 * (MAX_PATCH_DEPTH + 1);
        expect(await keys('patches/')).toHaveLength(patchCount);
        for (const [k, s] of snapshots.entries()) await expectRestores(s.id, states[k]!, used);

        // Keep only the deepest chain and the one after it: every patch and base stays.
        await forget(repo, { keepLast: 2 });
        const pruned = await prune(repo);
        expect(pruned.deletedChunks).toBe(0);
        expect(await keys('patches/')).toHaveLength(patchCount);
        await expectRestores(snapshots[MAX_PATCH_DEPTH]!.id, states[MAX_PATCH_DEPTH]!, used);
        await expectRestores('vm@latest', bytes, used);
        expect((await verifyRepository(repo, { readData: true })).ok).toBe(true);
        // Keep the last only: the deep chains go; its own patches and their whole base stay.
        await forget(repo, { keepLast: 1 });
        const second = await prune(repo);
        expect(second.deletedChunks).toBe(2 * MAX_PATCH_DEPTH);
        expect(await keys('patches/')).toHaveLength(2);
        await expectRestores('vm@latest', bytes, used);
        expect((await verifyRepository(repo, { readData: true })).ok).toBe(true);
        const s = await stats(repo);
        expect(s.total.chunks).toBe(USED_CHUNKS + 2);
      },
    );

    it.skipIf(b.skip)(
      'a flipped bit in a patch or in its base: verify names that object and the snapshots; restore is CORRUPT',
      async () => {
        const used = usedMap();
        const bytes = disk(1, used, content);
        const first = await backUp(bytes, used, 'vm');
        touch(bytes, 1);
        const second = await backUp(bytes, used, 'vm');
        const patches = await keys('patches/');
        expect(patches).toHaveLength(2);
        const patch = patches[0]!;
        const original = Uint8Array.from(await repo.backend.get(patch));
        const damaged = original.slice();
        damaged[damaged.length - 1]! ^= 0x10;
        await repo.backend.put(patch, damaged);
        let report = await verifyRepository(repo, { readData: true });
        expect(report.problems.map((p) => [p.key, p.snapshots])).toEqual([[patch, [second.id]]]);
        const out = sink(SIZE);
        await expect(
          restoreSnapshot(repo, { snapshot: second.id, target: out.target }),
        ).rejects.toMatchObject({ code: 'CORRUPT' });
        expect(out.state.aborted).toBe(true);
        await repo.backend.put(patch, original);
        // Its base, a whole chunk of the first snapshot: both snapshots need it.
        const base = `chunks/${patch.split('-')[1]!.slice(0, 2)}/${patch.split('-')[1]}`;
        const chunk = Uint8Array.from(await repo.backend.get(base));
        chunk[chunk.length - 1]! ^= 0x10;
        await repo.backend.put(base, chunk);
        report = await verifyRepository(repo, { readData: true });
        expect(report.problems).toHaveLength(1);
        expect(report.problems[0]!.key).toBe(base);
        expect([...report.problems[0]!.snapshots].sort()).toEqual([first.id, second.id].sort());
        // A missing patch: verify (without reading data) names it.
        await repo.backend.delete(patch);
        report = await verifyRepository(repo);
        expect(report.problems.map((p) => [p.kind, p.key])).toEqual([['missing', patch]]);
      },
    );

    it.skipIf(b.skip)(
      'a version 1 repository gets whole chunks and version 1 manifests only',
      async () => {
        const backend = await b.make();
        const config = {
          format: 'diskube-repository',
          version: 1,
          chunkSize: CHUNK,
          id: 'v1',
          created: '',
        };
        await backend.put(
          'config',
          encodeObject(ObjectType.config, new TextEncoder().encode(JSON.stringify(config)), null),
        );
        const v1 = await openRepository(backend, { owner: processOwner() });
        const used = usedMap();
        const bytes = disk(1, used, content);
        await backUp(bytes, used, 'vm', v1);
        touch(bytes, 1);
        const result = await backUp(bytes, used, 'vm', v1);
        expect([result.newPatches, result.newChunks]).toEqual([0, 2]);
        expect(result.snapshot.version).toBe(1);
        const out = sink(SIZE);
        await restoreSnapshot(v1, { snapshot: 'vm@latest', target: out.target });
        expect(Buffer.compare(out.bytes, expected(bytes, used))).toBe(0);
      },
    );
  });

  describe('verify, prune and stats in several passes (keysPerPass)', () => {
    const byKey = (r: { problems: Array<{ key: string; snapshots: string[] }> }) =>
      r.problems
        .map((p) => ({ ...p, snapshots: [...p.snapshots].sort() }))
        .sort((x, y) => x.key.localeCompare(y.key));

    it.skipIf(b.skip)(
      'give the results of one pass: stats, verify (clean and damaged), prune',
      async () => {
        const used = usedMap();
        const first = disk(1, used, content);
        await backUp(first, used, 'a');
        const second = Uint8Array.from(first);
        second[4 * CHUNK + 100]! ^= 1; // a patch over chunk 4
        await backUp(second, used, 'a');
        const other = disk(2, used, (o) => (o * 13) & 0xff);
        await backUp(other, used, 'b');
        const narrow = { keysPerPass: 8 };

        expect(await stats(repo, narrow)).toEqual(await stats(repo));
        const clean = await verifyRepository(repo, { readData: true });
        const cleanNarrow = await verifyRepository(repo, { readData: true, ...narrow });
        expect(clean).toMatchObject({ ok: true, passes: 1 });
        expect(cleanNarrow.passes).toBeGreaterThan(1);
        expect({ ...cleanNarrow, passes: 1 }).toEqual(clean);

        await forget(repo, { keepLast: 1, name: 'a' });
        const dry = await prune(repo, { dryRun: true });
        expect(dry.deletedObjects).toBeGreaterThan(0);
        expect(await prune(repo, { dryRun: true, ...narrow })).toEqual(dry);
        expect(await prune(repo, narrow)).toEqual({ ...dry, dryRun: false });
        expect(await verifyRepository(repo, { readData: true, ...narrow })).toMatchObject({
          ok: true,
        });
        await expectRestores('a@latest', second, used);
        await expectRestores('b@latest', other, used);

        const chunks = await keys('chunks/');
        await repo.backend.delete(chunks[0]!);
        const bytes = Uint8Array.from(await repo.backend.get(chunks[1]!));
        bytes[40]! ^= 0x10;
        await repo.backend.put(chunks[1]!, bytes);
        const damaged = await verifyRepository(repo, { readData: true });
        expect(damaged.problems.map((p) => p.kind).sort()).toEqual(['damaged', 'missing']);
        const damagedNarrow = await verifyRepository(repo, { readData: true, ...narrow });
        expect(byKey(damagedNarrow)).toEqual(byKey(damaged));
        expect(damagedNarrow.chunksReferenced).toBe(damaged.chunksReferenced);
      },
    );
  });

  describe('forget, prune and locks', () => {
    it.skipIf(b.skip)(
      'forget --keep-last 1 then prune frees the old chunks; the kept snapshot restores',
      async () => {
        const used = usedMap();
        const old = disk(1, used, content);
        await backUp(old, used, 'vm');
        const bytes = disk(1, used, (o) => (o * 13) & 0xff);
        const latest = await backUp(bytes, used, 'vm');
        const dry = await forget(repo, { keepLast: 1, dryRun: true });
        expect(dry.remove).toHaveLength(1);
        expect(await listSnapshots(repo)).toHaveLength(2);
        await forget(repo, { keepLast: 1 });
        expect((await listSnapshots(repo)).map((s) => s.id)).toEqual([latest.id]);
        const pruned = await prune(repo);
        // Chunks mostly unused changed little: stored as patches, their old bases stay.
        expect(latest.newPatches).toBeGreaterThan(0);
        expect(pruned.deletedChunks).toBe(USED_CHUNKS - latest.newPatches);
        expect((await verifyRepository(repo, { readData: true })).ok).toBe(true);
        await expectRestores('vm@latest', bytes, used);
      },
    );

    it.skipIf(b.skip)(
      'prune is refused while a backup holds a lock, and runs once it is released',
      async () => {
        const lock = await acquireLock(repo, false, 'backup vm');
        await expect(prune(repo)).rejects.toMatchObject({ code: 'IO', reason: 'locked' });
        await lock.release();
        await expect(prune(repo)).resolves.toMatchObject({ deletedObjects: 0 });
      },
    );

    /** `repo` whose backend runs `hook` once, before the first call of `method` on `prefix`. */
    const before = (method: 'get' | 'put', prefix: string, hook: () => Promise<unknown>) => {
      let ran = false;
      const call = repo.backend[method] as (key: string, ...rest: unknown[]) => Promise<unknown>;
      const backend = {
        ...repo.backend,
        [method]: async (key: string, ...rest: unknown[]) => {
          if (!ran && key.startsWith(prefix)) {
            ran = true;
            await hook();
          }
          return call(key, ...rest);
        },
      };
      return { repo: { ...repo, backend } as Repository, ran: () => ran };
    };

    it.skipIf(b.skip)(
      'a parent given by id is read from the repository: a forgotten one is refused, even cached',
      async () => {
        const cached = await openRepository(repo.backend, {
          cache: cacheUnder(await mkdtemp(join(inject('tmpRoot'), 'parent-'))),
          owner: processOwner(),
        });
        const used = usedMap();
        const bytes = disk(1, used, content);
        const first = await backUp(bytes, used, 'vm', cached);
        expect((await listSnapshots(cached)).map((s) => s.id)).toEqual([first.id]); // now cached
        await forget(cached, { keepLast: 0 });
        // Its chunks are still there (no prune yet), but nothing keeps them from the next one.
        await expect(
          backupToRepository(cached, {
            source: memorySource(bytes),
            used,
            blockSize: BLOCK,
            name: 'vm',
            parent: first.id,
          }),
        ).rejects.toMatchObject({ code: 'IO', reason: 'not-found' });
        expect(await listSnapshots(repo)).toEqual([]);
      },
    );

    it.skipIf(b.skip)(
      'a refresh rewrites the lock under its own key: a prune reading locks meanwhile sees it',
      async () => {
        const held = await acquireLock(repo, false, 'backup vm');
        const bodyBefore = new TextDecoder().decode(await repo.backend.get(held.key));
        // The refresh lands between prune's listing of locks/ and its reads of them.
        const racing = before('get', 'locks/', async () => {
          await new Promise((r) => setTimeout(r, 5));
          await held.refresh();
        });
        await expect(prune(racing.repo)).rejects.toMatchObject({ code: 'IO', reason: 'locked' });
        expect(racing.ran()).toBe(true);
        expect(await keys('locks/')).toEqual([held.key]);
        expect(new TextDecoder().decode(await repo.backend.get(held.key))).not.toBe(bodyBefore);
        // A release waits for a rewrite in flight, which would otherwise put the lock back.
        const rewriting = held.refresh();
        await held.release();
        await rewriting;
        expect(await keys('locks/')).toEqual([]);
      },
    );

    it.skipIf(b.skip)(
      'a backup whose lock was removed meanwhile fails with lock-lost and writes no snapshot',
      async () => {
        const used = usedMap();
        // `repo unlock --all` (or a prune judging the lock stale) while chunks are uploaded.
        const racing = before('put', 'index/', () => unlockRepository(repo, { all: true }));
        await expect(
          backupToRepository(racing.repo, {
            source: memorySource(disk(1, used, content)),
            used,
            blockSize: BLOCK,
            name: 'vm',
          }),
        ).rejects.toMatchObject({ code: 'IO', reason: 'lock-lost' });
        expect(racing.ran()).toBe(true);
        expect(await listSnapshots(repo)).toEqual([]);
        expect(await keys('snapshots/')).toEqual([]);
      },
    );

    it.skipIf(b.skip)(
      'a lock not rewritten for 25 minutes (a paused process) is lost before anything is written',
      async () => {
        const held = await acquireLock(repo, true, 'prune');
        await held.check();
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + LOST_AFTER_MS + 60_000 });
        try {
          await expect(held.check()).rejects.toMatchObject({ code: 'IO', reason: 'lock-lost' });
          await expect(held.check()).rejects.toThrow(/not rewritten for 26 minutes/);
        } finally {
          vi.useRealTimers();
        }
        await held.release();
      },
    );

    it.skipIf(b.skip)(
      "a lock whose holder's clock is behind is not stale while the store saw it written",
      async () => {
        const body = {
          exclusive: false,
          host: 'elsewhere',
          pid: 1,
          time: new Date(Date.now() - 2 * STALE_AFTER_MS).toISOString(),
          operation: 'backup vm',
        };
        await repo.backend.put(
          `locks/${'ab'.repeat(16)}`,
          new TextEncoder().encode(JSON.stringify(body)),
        );
        expect((await listLocks(repo)).map((l) => l.stale)).toEqual([null]);
        await expect(prune(repo)).rejects.toMatchObject({ code: 'IO', reason: 'locked' });
      },
    );

    it.skipIf(b.skip)(
      'a lock of a dead process on this host is stale: prune removes it',
      async () => {
        const dead = { ...repo, owner: { ...repo.owner, pid: 2 ** 22 + 12345 } };
        await acquireLock(dead, false, 'backup vm'); // never released, as after SIGKILL
        // The same host name in another pid namespace (a container): its pid is not ours to judge.
        const container = {
          ...repo,
          owner: { ...dead.owner, pidNamespace: 'pid:[4026530000]' },
        };
        const inContainer = await acquireLock(container, false, 'backup vm');
        expect((await listLocks(repo)).find((l) => l.key === inContainer.key)?.stale).toBeNull();
        await expect(prune(repo)).rejects.toMatchObject({ reason: 'locked' });
        await inContainer.release();
        const other = { ...repo, owner: { host: 'elsewhere', pid: 1 } };
        const foreign = await acquireLock(other, false, 'backup vm');
        await expect(prune(repo)).rejects.toMatchObject({ reason: 'locked' });
        await foreign.release();
        await prune(repo);
        expect(await keys('locks/')).toEqual([]);
      },
    );
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memorySource } from '@diskube/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { blockDigest } from './digest.js';
import { BackupReader } from './reader.js';
import { StateDigestCache } from './state-cache.js';
import { memoryWritable, prng, randomBitmap, randomBytesFrom } from './test-support.js';
import { writeIncremental, writeSnapshot } from './writer.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkb-state-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bs = 512;
const n = 400;

async function backup(
  image: Uint8Array,
  used: ReturnType<typeof randomBitmap>,
  cache: StateDigestCache,
  chain: BackupReader[] = [],
) {
  const out = memoryWritable();
  const parent = chain.at(-1);
  const parentDigests = parent === undefined ? null : await cache.open(parent);
  const backupId = randomBytes(16);
  const writer = await cache.create(Buffer.from(backupId).toString('hex'));
  const common = {
    source: memorySource(image),
    used,
    blockSize: bs,
    out: out.stream,
    blocksPerFrame: 4,
    backupId,
    stateDigests: writer,
  };
  const result =
    parent === undefined
      ? await writeSnapshot(common)
      : await writeIncremental({ ...common, chain, parentDigests });
  await parentDigests?.close();
  await writer.commit();
  const reader = await BackupReader.fromSource(memorySource(out.bytes()));
  return { result, reader };
}

const filesIn = async (root: string): Promise<string[]> => {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
};

describe('StateDigestCache', () => {
  test('a kept copy spares the next incremental reading the parent; a damaged copy is deleted and the parent read back', async () => {
    const cache = new StateDigestCache(join(dir, 'a'));
    const copyOf = (r: BackupReader) =>
      join(dir, 'a', 'dkb-state', r.backupId.slice(0, 2), r.backupId);
    const rand = prng(5);
    const image = randomBytesFrom(rand, n * bs);
    for (let i = 0; i < n; i += 7) image.fill(0, i * bs, (i + 1) * bs);
    const used = randomBitmap(rand, n, 0.7);
    const snap = await backup(image, used, cache);
    expect(snap.reader.hasDigestTable).toBe(false);
    const file = copyOf(snap.reader);
    const bytes = await readFile(file);
    // magic, id, one digest per used non-zero block in block order, count, SHA-256.
    const want: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const b = image.subarray(i * bs, (i + 1) * bs);
      if (used.get(i) && b.some((x) => x !== 0)) want.push(blockDigest(b));
    }
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('DKBSTATE');
    expect(bytes.subarray(8, 24).toString('hex')).toBe(snap.reader.backupId);
    expect(bytes.subarray(24, 24 + 16 * want.length).equals(Buffer.concat(want))).toBe(true);
    expect(bytes.length).toBe(64 + 16 * want.length);
    expect(snap.reader.digestedBlocks).toBe(want.length);

    const next = image.slice();
    for (let i = 3; i < n; i += 11) next.set(randomBytesFrom(rand, bs), i * bs);
    const day1 = await backup(next, used, cache, [snap.reader]);
    expect(day1.result.parentBytesRead).toBe(0);

    // The same incremental once the copy is damaged: one flipped bit anywhere is caught.
    for (const at of [3, 10, 24 + 5, bytes.length - 45, bytes.length - 1]) {
      const damaged = Buffer.from(bytes);
      damaged[at]! ^= 0x10;
      await writeFile(file, damaged);
      expect(await cache.open(snap.reader)).toBe(null);
      await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await writeFile(file, bytes.subarray(0, bytes.length - 16));
    expect(await cache.open(snap.reader)).toBe(null);
    const again = await backup(next, used, cache, [snap.reader]);
    expect(again.result.parentBytesRead).toBeGreaterThan(0);
    expect(await again.reader.bitmap('stored')).toEqual(await day1.reader.bitmap('stored'));
    expect(again.result.storedBlocks).toBe(day1.result.storedBlocks);

    // A copy of another backup under this one's name is refused (the id inside differs).
    const other = copyOf(day1.reader);
    await writeFile(file, await readFile(other));
    expect(await cache.open(snap.reader)).toBe(null);
  });

  test('an aborted writer leaves no file', async () => {
    const root = join(dir, 'b');
    const cache = new StateDigestCache(root);
    const w = await cache.create('ab'.repeat(16));
    await w.write(new Uint8Array(32));
    await w.abort();
    expect(await filesIn(root)).toEqual([]);
  });
});

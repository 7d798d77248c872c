// The classes of issue 11 §1, reproduced on DSL-built images patched byte by byte. Each case ends
// either in a refusal (code + reason) or in a used map that keeps every block the inodes
// reference according to debugfs (what e2fsck's pass 1 would find).
import { memorySource, type UsedBlocks } from '@diskube/core';
import { bitmapDifferences as differences } from '@diskube/core/test';
import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { extDriver } from './driver.js';
import { setU16, setU32 } from './hex.test-support.js';
import {
  descAt,
  descriptor,
  failure,
  freeInBitmap,
  fs,
  load,
  patchDesc,
  patchSuper,
  pathOf,
  referencedByInodes,
  referencedMap,
  superOf,
  u32,
} from './patch.test-support.js';
import type { ExtReason } from './reasons.js';

const tools = requireTools(['mke2fs', 'debugfs', 'dumpe2fs'], 'ext cross-check tests');

/** ext4, 1 KiB blocks, 2 groups, metadata_csum (checksummed bitmaps), flex_bg. */
const EXT4 = fs('16M', 'ext4 block=1K');
/** ext4 with 4 KiB blocks, 2 groups. */
const EXT4_4K = fs('160M', 'ext4 block=4K', false);
/** ext4 with uninit_bg (crc16 descriptors, bitmaps without checksums), 4 groups. */
const UNINIT_BG = fs('32M', 'ext4 block=1K features=uninit_bg,^metadata_csum,^64bit');
/** ext2 and ext3: block maps with indirect blocks, no checksums anywhere, 5 and 8 groups. */
const EXT2 = fs('40M', 'ext2 block=1K');
const EXT3 = fs('64M', 'ext3 block=1K');

/** The used map keeps every block the original image's inodes reference. */
async function expectKeepsReferenced(spec: string, result: UsedBlocks): Promise<void> {
  const byInode = referencedByInodes(await pathOf(spec));
  const ratio = result.blockSize / superOf(await load(spec)).blockSize;
  const referenced = referencedMap(byInode, result.blockCount, ratio);
  expect(referenced.count()).toBeGreaterThan(1000);
  expect(differences(result.used, referenced).missing).toEqual([]);
}

/** Refusal, or with assumeUsedOnDoubt every block kept with one `assumed-used` warning. */
async function expectRefused(img: Uint8Array, reason: ExtReason): Promise<void> {
  const e = await failure(extDriver.usedBlocks(memorySource(img)));
  expect(e).toMatchObject({ code: 'CORRUPT', reason });
  const doubt = await extDriver.usedBlocks(memorySource(img), { assumeUsedOnDoubt: true });
  expect(doubt.used.count()).toBe(doubt.blockCount);
  expect(doubt.warnings.map((w) => [w.code, w.reason])).toEqual([['assumed-used', reason]]);
}

describe.runIf(tools)('metadata pointers that overlap other structures', () => {
  it('the unpatched images pass every cross-check, and keep every referenced block', async () => {
    for (const spec of [EXT4, EXT4_4K, UNINIT_BG, EXT2, EXT3]) {
      const result = await extDriver.usedBlocks(memorySource(await load(spec)));
      expect(result.warnings).toEqual([]);
      await expectKeepsReferenced(spec, result);
    }
  });

  // EXT4: 1 KiB blocks, superblock at block 1, descriptor table at block 2, reserved GDT after.
  const cases: Array<[string, (img: Uint8Array) => number]> = [
    ['the superblock', () => 1],
    ['a descriptor block', () => 2],
    ['a reserved GDT block', () => 3],
    ["another group's inode table", (img) => u32(img, descAt(img, 0) + 0x8) + 5],
    ["another group's inode bitmap", (img) => u32(img, descAt(img, 0) + 0x4)],
    ['the backup superblock of group 1', () => 8193],
  ];
  for (const [name, target] of cases) {
    it(`a block bitmap pointer on ${name} → CORRUPT overlap`, async () => {
      const img = await load(EXT4);
      const block = target(img);
      patchDesc(img, 1, (d) => setU32(d, 0x0, block));
      await expectRefused(img, 'overlap');
    });
  }

  it("an inode table overlapping another group's (flex_bg) → CORRUPT overlap", async () => {
    const img = await load(UNINIT_BG);
    // Group 3's inode table moved one block back: onto the end of group 2's.
    patchDesc(img, 3, (d) => setU32(d, 0x8, u32(d, 0x8) - 1));
    await expectRefused(img, 'overlap');
  });

  it('two groups sharing one inode bitmap (4 KiB blocks) → CORRUPT overlap', async () => {
    const img = await load(EXT4_4K);
    const other = u32(img, descAt(img, 0) + 0x4);
    patchDesc(img, 1, (d) => setU32(d, 0x4, other));
    await expectRefused(img, 'overlap');
  });

  it('without flex_bg, a bitmap outside its own group → CORRUPT bad-location', async () => {
    const img = await load(EXT2);
    // Group 2's block bitmap pointed into group 3's data area, a block nothing else uses.
    patchDesc(img, 2, (d) => setU32(d, 0x0, 3 * 8192 + 4000));
    await expectRefused(img, 'bad-location');
  });
});

describe.runIf(tools)('free counts', () => {
  it('BLOCK_UNINIT on a group whose blocks are in use: that group is kept whole', async () => {
    const img = await load(EXT4);
    const before = descriptor(img, 0).free;
    // Group 0 holds every file. The checksum is fixed: only the lie remains.
    patchDesc(img, 0, (d) => setU16(d, 0x12, d[0x12]! | 2));
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.warnings.map((w) => w.code)).toEqual(['free-count']);
    expect(result.warnings[0]!.message).toContain(`its descriptor says ${before}`);
    expect(result.used.countRange(1, 8192)).toBe(8192);
    await expectKeepsReferenced(EXT4, result);
  });

  it('a checksummed bitmap that disagrees with its descriptor: that group is kept whole', async () => {
    const img = await load(EXT4);
    // Clear used data blocks in the bitmap and fix its checksum, but not the descriptor's count.
    const byInode = referencedByInodes(await pathOf(EXT4));
    const blocks = [...byInode.values()].flat().filter((b) => b < 8193);
    freeInBitmap(img, blocks.slice(0, 40), { checksums: true, counts: false });
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.warnings.map((w) => w.code)).toEqual(['free-count']);
    expect(result.used.countRange(1, 8192)).toBe(8192);
    await expectKeepsReferenced(EXT4, result);
  });

  for (const [name, spec] of [
    ['ext2', EXT2],
    ['ext3', EXT3],
    ['ext4 with uninit_bg', UNINIT_BG],
  ] as const) {
    it(`${name}: a bitmap without checksum that disagrees with its descriptor → CORRUPT free-count`, async () => {
      const img = await load(spec);
      const byInode = referencedByInodes(await pathOf(spec));
      freeInBitmap(img, [...byInode.values()].flat().slice(0, 100), {
        checksums: true,
        counts: false,
      });
      await expectRefused(img, 'free-count');
    });

    it(`${name}: a descriptor free count that disagrees with its bitmap → CORRUPT free-count`, async () => {
      const img = await load(spec);
      patchDesc(img, 0, (d) => setU16(d, 0xc, d[0xc]! + 1));
      await expectRefused(img, 'free-count');
    });
  }

  it('ext2/ext3: a superblock total that disagrees with the groups → CORRUPT free-count', async () => {
    for (const spec of [EXT2, EXT3]) {
      const img = await load(spec);
      patchSuper(img, (sb) => setU32(sb, 0xc, u32(sb, 0xc) - 7));
      await expectRefused(img, 'free-count');
    }
  });

  it('ext4: the superblock total is a lazy counter and is not compared', async () => {
    for (const spec of [EXT4, UNINIT_BG]) {
      const img = await load(spec);
      const clean = await extDriver.usedBlocks(memorySource(img));
      patchSuper(img, (sb) => setU32(sb, 0xc, u32(sb, 0xc) - 7));
      const result = await extDriver.usedBlocks(memorySource(img));
      expect(result.warnings).toEqual([]);
      expect(result.used.equals(clean.used)).toBe(true);
    }
  });
});

describe.runIf(tools)('crossCheck walk', () => {
  it('finds nothing missing on unpatched images, and follows every referenced block', async () => {
    for (const spec of [EXT4, EXT4_4K, UNINIT_BG, EXT2, EXT3]) {
      const img = await load(spec);
      const plain = await extDriver.usedBlocks(memorySource(img));
      const result = await extDriver.usedBlocks(memorySource(img), { crossCheck: true });
      expect(plain.crossCheck).toBeUndefined();
      expect(result.warnings).toEqual([]);
      expect(result.used.equals(plain.used)).toBe(true);
      const referenced = [...referencedByInodes(await pathOf(spec)).values()].flat().length;
      expect(result.crossCheck).toMatchObject({ missingBlocks: 0, missing: [] });
      // The walk counts the resize inode's reserved GDT blocks too, which debugfs lists alike.
      expect(result.crossCheck!.referencedBlocks).toBeGreaterThanOrEqual(referenced);
      expect(result.crossCheck!.objects).toBeGreaterThan(30);
    }
  });

  for (const [name, spec] of [
    ['ext4 with metadata_csum (bitmap checksum recomputed)', EXT4],
    ['ext3 (indirect blocks)', EXT3],
    ['ext2', EXT2],
  ] as const) {
    it(`${name}: data blocks cleared consistently from the bitmap are found, kept and named`, async () => {
      const img = await load(spec);
      const byInode = referencedByInodes(await pathOf(spec));
      // The file with the most blocks (/d/c), its first 25 blocks after the first.
      const [inode, blocks] = [...byInode.entries()]
        .filter(([i]) => i > 11)
        .sort((a, b) => b[1].length - a[1].length)[0]!;
      const victims = blocks.slice(1, 26);
      freeInBitmap(img, victims, { checksums: true, counts: true });
      const blind = await extDriver.usedBlocks(memorySource(img));
      expect(blind.warnings).toEqual([]);
      expect(victims.filter((b) => !blind.used.get(b))).toHaveLength(victims.length);

      const result = await extDriver.usedBlocks(memorySource(img), { crossCheck: true });
      await expectKeepsReferenced(spec, result);
      expect(result.crossCheck!.missingBlocks).toBe(victims.length);
      expect(result.crossCheck!.missing[0]).toMatchObject({ owner: `inode ${inode}` });
      const warned = result.warnings.filter((w) => w.code === 'referenced-free');
      expect(warned.length).toBeGreaterThan(0);
      expect(warned.length).toBeLessThanOrEqual(17);
      expect(warned[0]!.message).toContain(`inode ${inode}`);
    });
  }

  it('a loop in an extent tree ends, and the looping block is kept', async () => {
    const img = await load(EXT4);
    const sb = superOf(img);
    const byInode = referencedByInodes(await pathOf(EXT4));
    const [inode] = [...byInode.entries()].find(([i, b]) => i > 11 && b.length > 100)!;
    // Rewrite the inode's extent root: depth 2, one index entry → block L; block L: depth 1,
    // two index entries → L itself. L is a free block of group 0 whose old data we overwrite.
    const loop = 8000;
    const g = Math.floor((inode - 1) / sb.inodesPerGroup);
    const table = u32(img, descAt(img, g) + 0x8);
    const at = table * 1024 + ((inode - 1) % sb.inodesPerGroup) * sb.inodeSize + 0x28;
    const header = (b: Uint8Array, o: number, entries: number, max: number, depth: number) => {
      setU16(b, o, 0xf30a);
      setU16(b, o + 2, entries);
      setU16(b, o + 4, max);
      setU16(b, o + 6, depth);
    };
    header(img, at, 1, 4, 2);
    setU32(img, at + 12 + 4, loop);
    setU16(img, at + 12 + 8, 0);
    header(img, loop * 1024, 2, 84, 1);
    for (const k of [0, 1]) setU32(img, loop * 1024 + 12 + k * 12 + 4, loop);
    const result = await extDriver.usedBlocks(memorySource(img), { crossCheck: true });
    expect(result.used.get(loop)).toBe(true);
    expect(result.crossCheck!.missing.some((m) => m.block === loop)).toBe(true);
  });
});

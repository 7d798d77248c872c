import { describe, expect, it } from 'vitest';
import { COMPAT, INCOMPAT, RO_COMPAT } from './features.js';
import { descriptorBlock, groupBlockCount, groupHasSuper, groupOverhead } from './layout.js';
import { type Geometry, geometry, type Superblock } from './superblock.js';

/** A superblock with only the fields layout.ts reads; counts consistent for `groups` groups. */
function sb(over: Partial<Superblock> & { groups?: number }): { sb: Superblock; geo: Geometry } {
  const blockSize = over.blockSize ?? 1024;
  const blocksPerGroup = over.blocksPerGroup ?? 8 * blockSize;
  const firstDataBlock = over.firstDataBlock ?? (blockSize === 1024 ? 1 : 0);
  const groups = over.groups ?? 10;
  const base = {
    inodesCount: groups * 16,
    blocksCount: firstDataBlock + groups * blocksPerGroup,
    firstDataBlock,
    blockSize,
    clusterSize: blockSize,
    clusterRatio: 1,
    blocksPerGroup,
    clustersPerGroup: blocksPerGroup,
    inodesPerGroup: 16,
    inodeSize: 256,
    featureCompat: 0,
    featureIncompat: 0,
    featureRoCompat: RO_COMPAT.sparse_super,
    reservedGdtBlocks: 0,
    descSize: 32,
    firstMetaBg: 0,
    backupBgs: [0, 0],
  } as unknown as Superblock;
  const s = { ...base, ...over } as Superblock;
  return { sb: s, geo: geometry(s) };
}

const supers = (s: Superblock, n: number): number[] =>
  Array.from({ length: n }, (_, g) => g).filter((g) => groupHasSuper(s, g));

describe('groupHasSuper', () => {
  it('sparse_super: 0, 1 and powers of 3, 5, 7', () => {
    const { sb: s } = sb({});
    expect(supers(s, 400)).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
  });

  it('without sparse_super: every group', () => {
    const { sb: s } = sb({ featureRoCompat: 0 });
    expect(supers(s, 20)).toHaveLength(20);
  });

  it('sparse_super2: group 0 and s_backup_bgs only', () => {
    const { sb: s } = sb({ featureCompat: COMPAT.sparse_super2, backupBgs: [1, 9] });
    expect(supers(s, 20)).toEqual([0, 1, 9]);
    const none = sb({ featureCompat: COMPAT.sparse_super2, backupBgs: [0, 0] }).sb;
    expect(supers(none, 20)).toEqual([0]);
  });
});

describe('groupOverhead', () => {
  it('1 KiB blocks: boot block, superblock, GDT and reserved GDT in group 0', () => {
    const { sb: s, geo } = sb({ reservedGdtBlocks: 7 });
    expect(groupOverhead(s, geo, 0)).toEqual([
      [0, 1],
      [1, 1],
      [2, 1 + 7],
    ]);
    expect(groupOverhead(s, geo, 3)).toEqual([
      [1 + 3 * 8192, 1],
      [2 + 3 * 8192, 8],
    ]);
    expect(groupOverhead(s, geo, 2)).toEqual([]);
  });

  it('4 KiB blocks: superblock in block 0', () => {
    const { sb: s, geo } = sb({ blockSize: 4096, groups: 3 });
    expect(groupOverhead(s, geo, 0)).toEqual([
      [0, 1],
      [0, 1],
      [1, 1],
    ]);
    expect(groupOverhead(s, geo, 1)).toEqual([
      [32768, 1],
      [32769, 1],
    ]);
  });

  it('meta_bg: one descriptor block in the first, second and last group of each meta-group', () => {
    // 1 KiB blocks, 32-byte descriptors: 32 groups per meta-group; 70 groups, first_meta_bg 1.
    const { sb: s, geo } = sb({ featureIncompat: INCOMPAT.meta_bg, firstMetaBg: 1, groups: 70 });
    expect(geo.descBlocks).toBe(3);
    const first = (g: number): number => 1 + g * 8192;
    // Meta-group 0 is old-style: the first s_first_meta_bg descriptor blocks after each super.
    expect(groupOverhead(s, geo, 1)).toEqual([
      [first(1), 1],
      [first(1) + 1, 1],
    ]);
    expect(groupOverhead(s, geo, 31)).toEqual([]);
    // Meta-group 1 (groups 32–63): none of 32, 33 and 63 has a superblock backup.
    expect(groupOverhead(s, geo, 32)).toEqual([[first(32), 1]]);
    expect(groupOverhead(s, geo, 33)).toEqual([[first(33), 1]]);
    expect(groupOverhead(s, geo, 34)).toEqual([]);
    expect(groupOverhead(s, geo, 63)).toEqual([[first(63), 1]]);
    expect(descriptorBlock(s, geo, 0)).toBe(2);
    expect(descriptorBlock(s, geo, 1)).toBe(first(32));
    expect(descriptorBlock(s, geo, 2)).toBe(first(64));
  });

  it('meta_bg: the descriptor block follows a superblock backup in the same group', () => {
    // 1 KiB blocks, 64-byte descriptors: 16 groups per meta-group, first_meta_bg 0. Group 1
    // (second of meta-group 0) and group 49 (second of meta-group 3, and 7²) hold superblock
    // backups, so their descriptor copy sits one block later.
    const { sb: s, geo } = sb({ featureIncompat: INCOMPAT.meta_bg, descSize: 64, groups: 64 });
    expect(geo.descPerBlock).toBe(16);
    expect(groupOverhead(s, geo, 1)).toEqual([
      [1 + 8192, 1],
      [2 + 8192, 1],
    ]);
    expect(groupOverhead(s, geo, 49)).toEqual([
      [1 + 49 * 8192, 1],
      [2 + 49 * 8192, 1],
    ]);
    expect(groupOverhead(s, geo, 0)).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    expect(descriptorBlock(s, geo, 0)).toBe(2);
  });

  it('clips to the filesystem and knows the short last group', () => {
    const base = sb({ groups: 2, reservedGdtBlocks: 4 });
    const s = { ...base.sb, blocksCount: 1 + 8192 + 3 };
    const geo = geometry(s);
    expect(geo.groupCount).toBe(2);
    expect(groupBlockCount(s, geo, 0)).toBe(8192);
    expect(groupBlockCount(s, geo, 1)).toBe(3);
    // Superblock at 8193, then GDT + reserved clipped to the 2 blocks left.
    expect(groupOverhead(s, geo, 1)).toEqual([
      [8193, 1],
      [8194, 2],
    ]);
  });

  it('descriptor table follows the superblock in the classic layout', () => {
    const { sb: s, geo } = sb({ blockSize: 4096, groups: 2 });
    expect(descriptorBlock(s, geo, 0)).toBe(1);
    const k = sb({ groups: 2 });
    expect(descriptorBlock(k.sb, k.geo, 0)).toBe(2);
  });
});

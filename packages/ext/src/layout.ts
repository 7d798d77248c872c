import { COMPAT, INCOMPAT, RO_COMPAT } from './features.js';
import {
  type Geometry,
  hasCompat,
  hasIncompat,
  hasRoCompat,
  type Superblock,
} from './superblock.js';

// Sources: kernel Documentation/filesystems/ext4/overview.rst ("Block Groups", "Meta Block
// Groups", "Lazy Block Group Initialization"), fs/ext4/balloc.c (ext4_bg_has_super,
// ext4_num_base_meta_clusters, ext4_init_block_bitmap), e2fsprogs lib/ext2fs/closefs.c
// (ext2fs_bg_has_super, ext2fs_super_and_bgd_loc2), openfs.c (ext2fs_descriptor_block_loc2),
// alloc_sb.c (ext2fs_reserve_super_and_bgd).

/** A run of blocks: [first block, count]. */
export type BlockRange = [start: number, count: number];

/** True when `a` is a power of `b` (b^1, b^2, …). */
function isPowerOf(a: number, b: number): boolean {
  let n = a;
  while (n >= b) {
    if (n === b) return true;
    if (n % b !== 0) return false;
    n /= b;
  }
  return false;
}

/**
 * Does group `g` hold a superblock (primary or backup)?
 * - sparse_super2: only groups 0, s_backup_bgs[0] and s_backup_bgs[1];
 * - sparse_super: 0, 1 and powers of 3, 5 and 7;
 * - neither: every group.
 */
export function groupHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  if (hasCompat(sb, COMPAT.sparse_super2)) return g === sb.backupBgs[0] || g === sb.backupBgs[1];
  if (g === 1 || !hasRoCompat(sb, RO_COMPAT.sparse_super)) return true;
  if (g % 2 === 0) return false;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** First block of group `g`. */
export function groupFirstBlock(sb: Superblock, g: number): number {
  return sb.firstDataBlock + g * sb.blocksPerGroup;
}

/** Blocks in group `g`: blocksPerGroup except for the (usually short) last group. */
export function groupBlockCount(sb: Superblock, geo: Geometry, g: number): number {
  if (g < geo.groupCount - 1) return sb.blocksPerGroup;
  return sb.blocksCount - groupFirstBlock(sb, g);
}

/**
 * Where the superblock copy of group `g` starts. With 1 KiB blocks under bigalloc the first
 * data block is 0 but the superblock is still at byte 1024, i.e. block 1.
 */
function superBlockOf(sb: Superblock, g: number): number {
  const first = groupFirstBlock(sb, g);
  return first === 0 && sb.blockSize === 1024 ? 1 : first;
}

/** Block number of descriptor block `i` of the primary table. */
export function descriptorBlock(sb: Superblock, geo: Geometry, i: number): number {
  const metaBg = hasIncompat(sb, INCOMPAT.meta_bg);
  if (!metaBg || i < sb.firstMetaBg) {
    // Classic layout: the table follows the primary superblock.
    return superBlockOf(sb, 0) + 1 + i;
  }
  // meta_bg: descriptor block i describes meta-group i and lives in its first group, right
  // after that group's superblock backup if it has one.
  const g = i * geo.descPerBlock;
  return superBlockOf(sb, g) + (groupHasSuper(sb, g) ? 1 : 0);
}

/** A run of blocks holding one metadata structure, named for messages. */
export interface Structure {
  start: number;
  count: number;
  /** What it is, e.g. `superblock of group 3`. */
  what: string;
}

/**
 * The superblock copy, descriptor table copy (or meta_bg descriptor block) and reserved GDT
 * blocks of group `g`, each as its own structure, clipped to the filesystem.
 *
 * Under meta_bg, groups of the old-style region keep s_first_meta_bg descriptor blocks; we
 * also count s_reserved_gdt_blocks there as the kernel does (e2fsprogs does not; it is 0 on
 * filesystems mke2fs builds, and counting it can only over-report).
 */
export function groupStructures(sb: Superblock, geo: Geometry, g: number): Structure[] {
  const out: Structure[] = [];
  const push = (start: number, count: number, what: string): void => {
    const n = Math.min(count, sb.blocksCount - start);
    if (n > 0) out.push({ start, count: n, what: `${what} of group ${g}` });
  };
  const hasSuper = groupHasSuper(sb, g);
  const superBlock = superBlockOf(sb, g);
  if (hasSuper) push(superBlock, 1, 'superblock');
  const metaBg = hasIncompat(sb, INCOMPAT.meta_bg);
  const metaGroup = Math.floor(g / geo.descPerBlock);
  if (!metaBg || metaGroup < sb.firstMetaBg) {
    if (hasSuper) {
      const tableBlocks = metaBg ? sb.firstMetaBg : geo.descBlocks;
      push(superBlock + 1, tableBlocks, 'descriptor table');
      push(superBlock + 1 + tableBlocks, sb.reservedGdtBlocks, 'reserved GDT blocks');
    }
  } else {
    const r = g % geo.descPerBlock;
    if (r === 0 || r === 1 || r === geo.descPerBlock - 1) {
      push(superBlock + (hasSuper ? 1 : 0), 1, 'meta_bg descriptor block');
    }
  }
  return out;
}

/**
 * Blocks of group `g` taken by the superblock copy, descriptor table copy and reserved GDT
 * blocks, plus block 0 for group 0 (the boot block with 1 KiB blocks, the superblock's block
 * otherwise). Ranges are clipped to the filesystem.
 */
export function groupOverhead(sb: Superblock, geo: Geometry, g: number): BlockRange[] {
  const out: BlockRange[] = g === 0 ? [[0, 1]] : [];
  for (const s of groupStructures(sb, geo, g)) {
    const last = out[out.length - 1];
    // The descriptor table and reserved GDT blocks are contiguous: one range.
    if (last && s.what.startsWith('reserved') && last[0] + last[1] === s.start) last[1] += s.count;
    else out.push([s.start, s.count]);
  }
  return out;
}

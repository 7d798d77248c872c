import { Bitmap } from '@diskube/bitmap';
import type { BlockSource, CrossCheckReport, Warning } from '@diskube/core';
import type { Groups } from './driver.js';
import { parseExtentNode } from './extent.js';
import { BG_INODE_UNINIT } from './group-descriptor.js';
import { EXT4_EXTENTS_FL, hasBlockList, I_BLOCK_SIZE, parseInode } from './inode.js';
import { type Geometry, hasGroupDescChecksum, type Superblock } from './superblock.js';

// Sources: e2fsprogs e2fsck/pass1.c (check_blocks, scan_extent_node, process_block: what an
// in-use inode references), lib/ext2fs/block.c (ext2fs_block_iterate3: direct, IND, DIND,
// TIND), kernel Documentation/filesystems/ext4/ifork.rst and inodes.rst.

/** Largest single read of an inode table. */
const MAX_READ_BYTES = 1 << 20;
/** Owners named in the report and in warnings; the counts stay exact. */
const MAX_NAMED = 16;
/** Indirect levels of i_block[12], [13], [14]. */
const INDIRECT_SLOTS: Array<[slot: number, level: number]> = [
  [12, 1],
  [13, 2],
  [14, 3],
];

/**
 * The cross-check walk (e2fsck pass 1, restricted to block references): every in-use inode's
 * extent tree (index blocks included) or indirect blocks, its extended-attribute block, and the
 * reserved inodes (bad blocks, resize inode 7, journal inode 8, quota …) whatever the bitmap
 * says. A referenced block that `used` calls free is set in `used`, counted and named.
 *
 * "In use" is the inode bitmap's bit or a non-zero link count (pass 1 goes by the link count,
 * the bitmap is compared only in pass 5; keeping both can only keep more). Inodes past
 * bg_itable_unused and groups flagged INODE_UNINIT (both honoured only with descriptor
 * checksums) have never been written and are skipped, as the kernel and e2fsck do.
 *
 * Bounds: each metadata block (extent index/leaf block, indirect block) is read at most once
 * for the whole walk (a bitmap of visited blocks), so loops and blocks shared between trees
 * cost nothing more; extent trees deeper than the kernel's limit, children whose depth is not
 * one less than their parent's, and references outside the filesystem are not followed.
 */
export async function crossCheckWalk(
  source: BlockSource,
  sb: Superblock,
  geo: Geometry,
  groups: Groups,
  used: Bitmap,
  signal: AbortSignal | undefined,
): Promise<{ report: CrossCheckReport; warnings: Warning[] }> {
  const report: CrossCheckReport = {
    referencedBlocks: 0,
    objects: 0,
    missingBlocks: 0,
    missing: [],
  };
  const warnings: Warning[] = [];
  const bs = sb.blockSize;
  const ratio = sb.clusterRatio;
  // One bit per unit of the used map (its size is already allocated once). Under bigalloc a
  // cluster's second metadata block would go unread: the walk only adds to the map, so that
  // loses a check, never a block.
  const visited = new Bitmap(used.length);
  const is64 = sb.descSize >= 64;
  let owner = 0;
  let unnamed = 0;

  const read = async (block: number, count: number): Promise<Uint8Array> => {
    const dst = new Uint8Array(count * bs);
    await source.read(block * bs, dst);
    return dst;
  };

  /** Prove blocks [start, start + count) are in the map; keep and name the ones that are not. */
  const reference = (start: number, count: number): void => {
    if (count <= 0 || start < sb.firstDataBlock || start >= sb.blocksCount) return;
    const n = Math.min(count, sb.blocksCount - start);
    report.referencedBlocks += n;
    const first = Math.floor(start / ratio);
    const end = Math.min(Math.floor((start + n - 1) / ratio) + 1, used.length);
    if (end <= first || used.countRange(first, end - first) === end - first) return;
    let u = first;
    while (u < end) {
      const clear = used.nextClear(u);
      if (clear < 0 || clear >= end) break;
      const set = used.nextSet(clear);
      const stop = set < 0 || set > end ? end : set;
      used.setRange(clear, stop - clear);
      report.missingBlocks += stop - clear;
      if (report.missing.length < MAX_NAMED) {
        report.missing.push({ owner: `inode ${owner}`, block: clear, count: stop - clear });
      }
      if (warnings.length < MAX_NAMED) {
        warnings.push({
          code: 'referenced-free',
          message: `inode ${owner} references ${stop - clear} ${ratio > 1 ? 'clusters' : 'blocks'} at ${clear} that the block bitmap calls free; kept`,
          offset: clear * sb.clusterSize,
        });
      } else {
        unnamed++;
      }
      u = stop;
    }
  };

  /** A metadata block (index or indirect): keep it, and read it unless already read. */
  const metadata = async (block: number): Promise<Uint8Array | null> => {
    if (block < sb.firstDataBlock || block >= sb.blocksCount) return null;
    reference(block, 1);
    const unit = Math.floor(block / ratio);
    if (unit >= visited.length || visited.get(unit)) return null;
    visited.set(unit);
    return read(block, 1);
  };

  const walkExtents = async (
    bytes: Uint8Array,
    at: number,
    size: number,
    depth: number,
  ): Promise<void> => {
    const node = parseExtentNode(bytes, at, size, 0);
    if (!node || (depth >= 0 && node.depth !== depth)) return;
    for (const [block, count] of node.entries) {
      if (node.depth === 0) {
        reference(block, count);
        continue;
      }
      const child = await metadata(block);
      if (child) await walkExtents(child, 0, bs, node.depth - 1);
    }
  };

  const walkIndirect = async (block: number, level: number): Promise<void> => {
    const bytes = await metadata(block);
    if (!bytes) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let runStart = 0;
    let runCount = 0;
    for (let k = 0; k < bs / 4; k++) {
      const b = view.getUint32(k * 4, true);
      if (b === 0) continue;
      if (level > 1) {
        await walkIndirect(b, level - 1);
      } else if (runCount > 0 && runStart + runCount === b) {
        runCount++;
      } else {
        reference(runStart, runCount);
        runStart = b;
        runCount = 1;
      }
    }
    reference(runStart, runCount);
  };

  const walkInode = async (
    bytes: Uint8Array,
    at: number,
    offset: number,
    reserved: boolean,
  ): Promise<void> => {
    const inode = parseInode(bytes, at, offset);
    report.objects++;
    if (inode.fileAcl !== 0) reference(is64 ? inode.fileAcl : inode.fileAcl % 2 ** 32, 1);
    if (!reserved && !hasBlockList(inode)) return;
    const iBlock = bytes.subarray(at + inode.blockAt, at + inode.blockAt + I_BLOCK_SIZE);
    if ((inode.flags & EXT4_EXTENTS_FL) !== 0) {
      await walkExtents(iBlock, 0, I_BLOCK_SIZE, -1);
      return;
    }
    const view = new DataView(iBlock.buffer, iBlock.byteOffset, I_BLOCK_SIZE);
    for (let k = 0; k < 12; k++) reference(view.getUint32(k * 4, true), 1);
    for (const [slot, level] of INDIRECT_SLOTS) {
      const b = view.getUint32(slot * 4, true);
      if (b !== 0) await walkIndirect(b, level);
    }
  };

  const csum = hasGroupDescChecksum(sb);
  const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / bs));
  const inodesPerBlock = bs / sb.inodeSize;
  for (let g = 0; g < geo.groupCount; g++) {
    signal?.throwIfAborted();
    const inodeUninit = csum && (groups.flags[g]! & BG_INODE_UNINIT) !== 0;
    // Group 0 holds the reserved inodes, walked whatever the flags say.
    const reservedHere = g === 0 ? Math.min(sb.firstIno - 1, sb.inodesPerGroup) : 0;
    let limit = sb.inodesPerGroup;
    if (csum) limit -= Math.min(groups.itableUnused[g]!, sb.inodesPerGroup);
    if (inodeUninit) limit = 0;
    limit = Math.max(limit, reservedHere);
    if (limit === 0) continue;
    const bitmap = inodeUninit ? new Uint8Array(bs) : await read(groups.inodeBitmap[g]!, 1);
    const tableBlocks = Math.ceil(limit / inodesPerBlock);
    for (let b = 0; b < tableBlocks; b += perRead) {
      const count = Math.min(perRead, tableBlocks - b);
      const block = groups.inodeTable[g]! + b;
      const chunk = await read(block, count);
      const firstIndex = b * inodesPerBlock;
      const lastIndex = Math.min(limit, firstIndex + count * inodesPerBlock);
      for (let i = firstIndex; i < lastIndex; i++) {
        const at = (i - firstIndex) * sb.inodeSize;
        const inUse = (bitmap[i >>> 3]! & (1 << (i & 7))) !== 0;
        const reserved = i < reservedHere;
        // i_links_count at 0x1A.
        const links = chunk[at + 0x1a]! | (chunk[at + 0x1b]! << 8);
        if (!inUse && !reserved && links === 0) continue;
        owner = g * sb.inodesPerGroup + i + 1;
        await walkInode(chunk, at, block * bs + at, reserved);
      }
    }
  }
  if (unnamed > 0) {
    warnings.push({
      code: 'referenced-free',
      message: `${unnamed} more runs of referenced blocks the bitmap called free were kept (${report.missingBlocks} in all)`,
    });
  }
  return { report, warnings };
}

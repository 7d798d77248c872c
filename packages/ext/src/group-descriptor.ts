import { FieldReader } from '@diskube/core';
import { crc16, crc32cRaw, le32 } from './checksum.js';
import type { ExtReason } from './reasons.js';

// Sources: kernel Documentation/filesystems/ext4/group_descr.rst (struct ext4_group_desc),
// fs/ext4/super.c (ext4_group_desc_csum), e2fsprogs lib/ext2fs/csum.c
// (ext2fs_group_desc_csum, ext2fs_block_bitmap_csum_set).

const STRUCTURE = 'ext4 group descriptor';

/** bg_flags bits. */
export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;

/** Offset of bg_checksum, skipped by both checksum algorithms. */
const BG_CHECKSUM = 0x1e;
/** End of bg_block_bitmap_csum_hi: descriptors shorter than this only store the low 16 bits. */
const BLOCK_BITMAP_CSUM_HI_END = 0x3c;

export interface GroupDescriptor {
  /** Block number of the group's block (cluster) bitmap. */
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  /** bg_free_blocks_count: free clusters of the group (blocks without bigalloc). */
  freeBlocksCount: number;
  flags: number;
  /** bg_itable_unused: inodes at the end of the table never used (with descriptor checksums). */
  itableUnused: number;
  /** bg_block_bitmap_csum_lo, plus _hi << 16 when the descriptor has room for it. */
  blockBitmapCsum: number;
  /** bg_checksum as stored. */
  checksum: number;
}

/**
 * Parse the descriptor at `bytes[at, at + descSize)`. `descSize` is 32, or s_desc_size (≥ 64)
 * under 64bit, in which case the _hi halves are used. `offset` is the source byte offset of
 * `bytes[at]`, for error context.
 */
export function parseGroupDescriptor(
  bytes: Uint8Array,
  at: number,
  descSize: number,
  offset = 0,
): GroupDescriptor {
  const whole = new FieldReader<ExtReason>(bytes, STRUCTURE, offset - at);
  if (descSize < 32 || !whole.has(at, descSize)) {
    throw whole.corrupt(
      `group descriptor of ${descSize} bytes does not fit the buffer`,
      at,
      'truncated',
    );
  }
  const f = whole.sub(at, descSize);
  const wide = descSize >= 64;
  const hi = (o: number): number => (wide ? f.u32le(o) * 2 ** 32 : 0);
  const hi16 = (o: number): number => (wide ? f.u16le(o) * 2 ** 16 : 0);
  return {
    blockBitmap: hi(0x20) + f.u32le(0x0),
    inodeBitmap: hi(0x24) + f.u32le(0x4),
    inodeTable: hi(0x28) + f.u32le(0x8),
    freeBlocksCount: hi16(0x2c) + f.u16le(0xc),
    flags: f.u16le(0x12),
    itableUnused: hi16(0x32) + f.u16le(0x1c),
    blockBitmapCsum:
      (descSize >= BLOCK_BITMAP_CSUM_HI_END ? f.u16le(0x38) * 2 ** 16 : 0) + f.u16le(0x18),
    checksum: f.u16le(BG_CHECKSUM),
  };
}

/**
 * bg_checksum of descriptor `group` at `bytes[at, at + descSize)`.
 * metadata_csum: low 16 bits of crc32c(seed, le32 group, descriptor with bg_checksum zeroed).
 * uninit_bg (gdt_csum): crc16(~0, uuid, le32 group, descriptor without bg_checksum).
 */
export function groupDescriptorChecksum(
  bytes: Uint8Array,
  at: number,
  descSize: number,
  group: number,
  method: { metadataCsum: true; seed: number } | { metadataCsum: false; uuid: Uint8Array },
): number {
  const end = at + descSize;
  if (method.metadataCsum) {
    let crc = crc32cRaw(method.seed, le32(group));
    crc = crc32cRaw(crc, bytes, at, at + BG_CHECKSUM);
    crc = crc32cRaw(crc, ZERO2);
    crc = crc32cRaw(crc, bytes, at + BG_CHECKSUM + 2, end);
    return crc & 0xffff;
  }
  let crc = crc16(0xffff, method.uuid);
  crc = crc16(crc, le32(group));
  crc = crc16(crc, bytes, at, at + BG_CHECKSUM);
  return crc16(crc, bytes, at + BG_CHECKSUM + 2, end);
}

const ZERO2 = new Uint8Array(2);

/**
 * Checksum of a block bitmap as stored in the descriptor: crc32c(seed, the first
 * clustersPerGroup / 8 bytes), truncated to 16 bits when the descriptor has no _hi field.
 */
export function blockBitmapChecksum(
  bitmap: Uint8Array,
  start: number,
  clustersPerGroup: number,
  seed: number,
  descSize: number,
): number {
  const crc = crc32cRaw(seed, bitmap, start, start + clustersPerGroup / 8);
  return descSize >= BLOCK_BITMAP_CSUM_HI_END ? crc : crc & 0xffff;
}

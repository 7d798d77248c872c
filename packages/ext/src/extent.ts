import { FieldReader } from '@diskube/core';
import type { ExtReason } from './reasons.js';

// Sources: kernel Documentation/filesystems/ext4/ifork.rst ("Extent Tree"), fs/ext4/
// ext4_extents.h (struct ext4_extent_header, ext4_extent, ext4_extent_idx, EXT4_MAX_EXTENT_DEPTH
// is 5 in ext4_extents.h's comments and e2fsprogs' EXT2_EXTENT_MAX_DEPTH usage).

export const EXT4_EXT_MAGIC = 0xf30a;
/** Deepest tree the kernel builds (its own sanity limit for eh_depth). */
export const EXT4_MAX_EXTENT_DEPTH = 5;
/** ee_len above this marks an unwritten (preallocated) extent of ee_len − 32768 blocks. */
const EXT_INIT_MAX_LEN = 32768;

/** One node of an extent tree: leaf extents or index entries, as [block, count] pairs. */
export interface ExtentNode {
  depth: number;
  /** depth 0: [first physical block, length] per extent; depth > 0: [child block, 1]. */
  entries: Array<[number, number]>;
}

/**
 * Parse the extent node at `bytes[at, at + size)`: the 60-byte root in i_block, or a tree block.
 * Returns null when the header is not a valid extent header (bad magic, more entries than fit,
 * a depth beyond the kernel's limit): the walk cannot follow that tree.
 */
export function parseExtentNode(
  bytes: Uint8Array,
  at: number,
  size: number,
  offset: number,
): ExtentNode | null {
  const f = new FieldReader<ExtReason>(bytes, 'ext4 extent node', offset - at);
  if (!f.has(at, 12)) return null;
  const eh_magic = f.u16le(at + 0x0);
  const eh_entries = f.u16le(at + 0x2);
  const eh_max = f.u16le(at + 0x4);
  const eh_depth = f.u16le(at + 0x6);
  const fit = Math.floor((size - 12) / 12);
  if (eh_magic !== EXT4_EXT_MAGIC || eh_entries > eh_max || eh_max > fit) return null;
  if (eh_depth > EXT4_MAX_EXTENT_DEPTH) return null;
  const entries: Array<[number, number]> = [];
  for (let k = 0; k < eh_entries; k++) {
    const e = at + 12 + k * 12;
    if (eh_depth === 0) {
      const ee_len = f.u16le(e + 0x4);
      const len = ee_len > EXT_INIT_MAX_LEN ? ee_len - EXT_INIT_MAX_LEN : ee_len;
      entries.push([f.u16le(e + 0x6) * 2 ** 32 + f.u32le(e + 0x8), len]);
    } else {
      entries.push([f.u16le(e + 0x8) * 2 ** 32 + f.u32le(e + 0x4), 1]);
    }
  }
  return { depth: eh_depth, entries };
}

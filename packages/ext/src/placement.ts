import { CorruptError } from '@diskube/core';
import { INCOMPAT } from './features.js';
import { groupStructures } from './layout.js';
import { type Geometry, hasIncompat, type Superblock } from './superblock.js';

// Sources: kernel fs/ext4/super.c (ext4_check_descriptors: a bitmap or inode table on the
// superblock or the descriptor table refuses the mount; without flex_bg each must lie in its own
// group), e2fsprogs e2fsck/super.c (check_super_block) and pass1.c (mark_table_blocks: a table
// "conflicts with some other fs block").

/** Where each group's descriptor says its bitmaps and inode table are. */
export interface GroupPointers {
  blockBitmap: Float64Array;
  inodeBitmap: Float64Array;
  inodeTable: Float64Array;
  /** Byte offset of each group's descriptor, for error context. */
  descOffset: Float64Array;
}

const KINDS = ['block bitmap', 'inode bitmap', 'inode table'] as const;

/**
 * Every metadata structure must have blocks of its own: the superblock copies, descriptor
 * tables, reserved GDT blocks, the MMP block and every group's bitmaps and inode table. With
 * flex_bg a group's tables may sit in another group; only an overlap between two distinct
 * structures is wrong. A bitmap "read" from a block that holds something else describes nothing
 * (a block bitmap on the superblock drops the root directory), and the descriptor does not say
 * which of the two structures is misplaced, so nothing is trusted: CORRUPT `overlap`.
 *
 * Cost: O(groups log groups) on numbers already in memory, no I/O.
 */
export function checkOverlaps(
  sb: Superblock,
  geo: Geometry,
  groups: GroupPointers,
  mmpBlock: number | null,
): CorruptError | null {
  const n = geo.groupCount;
  const starts: number[] = [];
  const ends: number[] = [];
  /** ≥ 0: group × 3 + kind of a descriptor pointer; < 0: −1 − index into `layout`. */
  const owners: number[] = [];
  const layout: string[] = [];
  const add = (start: number, count: number, owner: number): void => {
    starts.push(start);
    ends.push(start + count);
    owners.push(owner);
  };
  for (let g = 0; g < n; g++) {
    for (const s of groupStructures(sb, geo, g)) {
      layout.push(`${s.what} (block ${s.start})`);
      add(s.start, s.count, -layout.length);
    }
    add(groups.blockBitmap[g]!, 1, g * 3);
    add(groups.inodeBitmap[g]!, 1, g * 3 + 1);
    add(groups.inodeTable[g]!, geo.inodeTableBlocks, g * 3 + 2);
  }
  if (mmpBlock !== null) {
    layout.push(`MMP block (block ${mmpBlock})`);
    add(mmpBlock, 1, -layout.length);
  }
  const order = new Uint32Array(starts.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => starts[a]! - starts[b]! || ends[a]! - ends[b]!);
  const name = (owner: number): string => {
    if (owner < 0) return layout[-1 - owner]!;
    const g = Math.floor(owner / 3);
    const kind = KINDS[owner % 3]!;
    const at = [groups.blockBitmap, groups.inodeBitmap, groups.inodeTable][owner % 3]![g]!;
    return `${kind} of group ${g} (block ${at})`;
  };
  let reach = -1;
  let reachOwner = 0;
  for (const i of order) {
    if (starts[i]! < reach) {
      // Blame a descriptor pointer when one of the two is one (layout positions are computed).
      const owner = owners[i]! >= 0 ? owners[i]! : reachOwner;
      const offset = owner >= 0 ? groups.descOffset[Math.floor(owner / 3)]! : undefined;
      return new CorruptError(
        `${name(owners[i]!)} overlaps ${name(reachOwner)}: one of them is misplaced, so no bitmap can be trusted`,
        {
          structure: 'ext4 group descriptor',
          ...(offset !== undefined ? { offset } : {}),
          reason: 'overlap',
        },
      );
    }
    if (ends[i]! > reach) {
      reach = ends[i]!;
      reachOwner = owners[i]!;
    }
  }
  return null;
}

/**
 * Without flex_bg the kernel refuses a group whose bitmaps or inode table lie outside the group
 * (the last group extends to the end of the filesystem): the descriptor cannot be right.
 */
export function outsideOwnGroup(
  sb: Superblock,
  geo: Geometry,
  g: number,
  start: number,
  count: number,
): boolean {
  if (hasIncompat(sb, INCOMPAT.flex_bg)) return false;
  const first = sb.firstDataBlock + g * sb.blocksPerGroup;
  const end = g === geo.groupCount - 1 ? sb.blocksCount : first + sb.blocksPerGroup;
  return start < first || start + count > end;
}

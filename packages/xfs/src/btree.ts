import { CorruptError, FieldReader } from '@diskube/core';
import { NULLAGBLOCK, sameUuid } from './agf.js';
import { storedChecksum, xfsChecksum } from './checksum.js';
import type { XfsReason } from './reasons.js';
import type { Superblock } from './superblock.js';

// Sources: kernel fs/xfs/libxfs/xfs_format.h (struct xfs_btree_block short form,
// XFS_ABTB_MAGIC, XFS_ABTB_CRC_MAGIC, xfs_alloc_rec/key), fs/xfs/libxfs/xfs_alloc_btree.c
// (xfs_allocbt_verify, xfs_allocbt_maxrecs), fs/xfs/libxfs/xfs_btree.c
// (xfs_btree_check_sblock, xfs_btree_compute_maxlevels); "XFS Algorithms & Data Structures",
// chapters "B+trees" and "AG Free Space B+trees".

export const XFS_ABTB_MAGIC = 0x41425442; // 'ABTB', v4 free space by block number
export const XFS_ABTB_CRC_MAGIC = 0x41423342; // 'AB3B', the same on v5
export const XFS_ABTC_MAGIC = 0x41425443; // 'ABTC', v4 free space by size (cntbt)
export const XFS_ABTC_CRC_MAGIC = 0x41423343; // 'AB3C', the same on v5

/** Which free-space btree: by block number (bnobt) or by size (cntbt). */
export type AllocBtree = 'bno' | 'cnt';
const MAGICS = {
  bno: [XFS_ABTB_MAGIC, XFS_ABTB_CRC_MAGIC],
  cnt: [XFS_ABTC_MAGIC, XFS_ABTC_CRC_MAGIC],
} as const;
const V4_HEADER = 16;
const V5_HEADER = 56;
const BB_CRC = 0x34;

/** Records per leaf and key/pointer pairs per node of a short-form free-space btree block. */
export function allocMaxRecs(sb: Superblock): { leaf: number; node: number; header: number } {
  const header = sb.version === 5 ? V5_HEADER : V4_HEADER;
  return {
    leaf: (sb.blockSize - header) / 8,
    node: Math.floor((sb.blockSize - header) / 12),
    header,
  };
}

/**
 * The deepest free-space btree an AG of `agblocks` can need: at most (agblocks + 1) / 2 free
 * extents, blocks at least half full (xfs_alloc_compute_maxlevels). The kernel rejects an AGF
 * whose levels exceed this.
 */
export function allocMaxLevels(sb: Superblock): number {
  const { leaf, node } = allocMaxRecs(sb);
  const minLeaf = Math.floor(leaf / 2);
  const minNode = Math.floor(node / 2);
  let blocks = Math.ceil(Math.floor((sb.agblocks + 1) / 2) / minLeaf);
  let levels = 1;
  while (blocks > 1) {
    blocks = Math.ceil(blocks / minNode);
    levels++;
  }
  return levels;
}

/** One bnobt block: its level, siblings and either records or keys with child pointers. */
export interface BtreeBlock {
  level: number;
  leftsib: number;
  rightsib: number;
  /** Leaf: start of each free extent; node: start key of each child. */
  starts: number[];
  /** Leaf: length of each free extent; node: unused (empty). */
  counts: number[];
  /** Node: AG block of each child; leaf: empty. */
  ptrs: number[];
}

/**
 * Parse and verify one block of an AG's free-space-by-block btree. `agbno` is where it was read
 * from (v5 blocks must say so), `level` the level its parent (or the AGF) promises.
 */
export function parseBnoBlock(
  bytes: Uint8Array,
  offset: number,
  sb: Superblock,
  agno: number,
  agbno: number,
  agLength: number,
  level: number,
  isRoot: boolean,
  kind: AllocBtree = 'bno',
): BtreeBlock {
  const f = new FieldReader<XfsReason>(bytes, `XFS ${kind}bt block ${agno}/${agbno}`, offset).need(
    sb.blockSize,
  );
  const v5 = sb.version === 5;
  const bb_magic = f.u32be(0x00);
  if (bb_magic !== MAGICS[kind][v5 ? 1 : 0]) {
    throw f.corrupt(`bad magic 0x${bb_magic.toString(16)}`, 0x00, 'bad-magic');
  }
  if (v5) {
    if (xfsChecksum(bytes, BB_CRC, 0, sb.blockSize) !== storedChecksum(bytes, BB_CRC)) {
      throw f.corrupt('checksum mismatch', BB_CRC, 'checksum');
    }
    // bb_blkno is the block's own address in 512-byte units (linear, not a packed fsblock).
    const bb_blkno = f.u64be(0x10, 'bb_blkno');
    const daddr = (agno * sb.agblocks + agbno) * (sb.blockSize / 512);
    if (bb_blkno !== daddr)
      throw f.corrupt(`bb_blkno ${bb_blkno}, read at ${daddr}`, 0x10, 'bad-location');
    if (!sameUuid(f.slice(0x20, 16), sb.metaUuid)) {
      throw f.corrupt('uuid differs from the superblock', 0x20, 'bad-uuid');
    }
    const bb_owner = f.u32be(0x30);
    if (bb_owner !== agno) throw f.corrupt(`owner AG ${bb_owner}`, 0x30, 'bad-location');
  }
  const bb_level = f.u16be(0x04);
  if (bb_level !== level)
    throw f.corrupt(`level ${bb_level}, expected ${level}`, 0x04, 'bad-level');
  const bb_numrecs = f.u16be(0x06);
  const max = allocMaxRecs(sb);
  // Only a root leaf may be empty (an AG without free space).
  const limit = level === 0 ? max.leaf : max.node;
  if (bb_numrecs > limit || (bb_numrecs === 0 && !(isRoot && level === 0))) {
    throw f.corrupt(`${bb_numrecs} records (at most ${limit})`, 0x06, 'bad-numrecs');
  }
  const bb_leftsib = f.u32be(0x08);
  const bb_rightsib = f.u32be(0x0c);
  for (const [sib, at] of [
    [bb_leftsib, 0x08],
    [bb_rightsib, 0x0c],
  ] as const) {
    if (sib !== NULLAGBLOCK && (sib >= agLength || sib === agbno)) {
      throw f.corrupt(`sibling ${sib}`, at, 'bad-sibling');
    }
  }
  const starts: number[] = [];
  const counts: number[] = [];
  const ptrs: number[] = [];
  const h = max.header;
  for (let i = 0; i < bb_numrecs; i++) {
    const start = f.u32be(h + i * 8);
    const count = f.u32be(h + i * 8 + 4);
    if (level === 0) {
      // A free extent lies wholly inside the AG and is not empty.
      if (count === 0 || start >= agLength || start + count > agLength) {
        throw f.corrupt(
          `free extent [${start}, +${count}) outside the AG`,
          h + i * 8,
          'out-of-range',
        );
      }
      counts.push(count);
    } else {
      counts.push(count);
      const at = h + max.node * 8 + i * 4;
      const ptr = f.u32be(at);
      if (ptr === 0 || ptr >= agLength) throw f.corrupt(`child pointer ${ptr}`, at, 'out-of-range');
      ptrs.push(ptr);
      if (start >= agLength)
        throw f.corrupt(`key ${start} outside the AG`, h + i * 8, 'out-of-range');
    }
    // bnobt records and keys are sorted by start block, without overlaps (checked across blocks
    // by the walk); cntbt ones by (length, start block).
    if (i > 0 && kind === 'cnt') {
      const pc = counts[i - 1]!;
      const ps = starts[i - 1]!;
      if (count < pc || (count === pc && start <= ps)) {
        throw f.corrupt(`key ${count}/${start} after ${pc}/${ps}`, h + i * 8, 'bad-key-order');
      }
    } else if (i > 0) {
      const prev = starts[i - 1]!;
      const prevEnd = level === 0 ? prev + counts[i - 1]! : prev + 1;
      if (start < prevEnd)
        throw f.corrupt(`key ${start} after ${prev}`, h + i * 8, 'bad-key-order');
    }
    starts.push(start);
  }
  return { level: bb_level, leftsib: bb_leftsib, rightsib: bb_rightsib, starts, counts, ptrs };
}

/** The free extents of one AG and the btree blocks that hold them. */
export interface FreeSpace {
  /** Start block of each free extent, ascending. */
  starts: number[];
  counts: number[];
  /** AG blocks of the btree itself (used). */
  nodes: number[];
}

/**
 * Walk the bnobt of one AG level by level from the root. Every level is a sibling chain read in
 * key order: the chain must match the parents' pointers, keys must rise across blocks, a child's
 * keys must lie between its parent key and the next, no block may be visited twice, and the
 * number of blocks is bounded by the AG length. `read(agbno)` returns one block.
 */
export async function walkBnoBtree(
  read: (agbno: number) => Promise<{ bytes: Uint8Array; offset: number }>,
  sb: Superblock,
  agno: number,
  agLength: number,
  root: number,
  levels: number,
  signal?: AbortSignal,
  kind: AllocBtree = 'bno',
): Promise<FreeSpace> {
  const seen = new Set<number>();
  const nodes: number[] = [];
  let level = levels - 1;
  // Blocks of the current level, in key order, with the key range their parent gives them.
  let current: Array<{ agbno: number; low: number; high: number }> = [
    { agbno: root, low: 0, high: agLength },
  ];
  const out: FreeSpace = { starts: [], counts: [], nodes };
  for (;;) {
    const next: typeof current = [];
    let prevEnd = 0;
    for (let i = 0; i < current.length; i++) {
      signal?.throwIfAborted();
      const { agbno, low, high } = current[i]!;
      const { bytes, offset } = await read(agbno);
      if (seen.has(agbno)) {
        throw new CorruptError(`block ${agbno} is reached twice`, {
          structure: `XFS ${kind}bt block ${agno}/${agbno}`,
          offset,
          reason: 'btree-loop',
        });
      }
      seen.add(agbno);
      nodes.push(agbno);
      if (seen.size > agLength) {
        throw new CorruptError('more btree blocks than the AG has', {
          structure: `XFS ${kind}bt ${agno}`,
          offset,
          reason: 'too-many-nodes',
        });
      }
      const block = parseBnoBlock(
        bytes,
        offset,
        sb,
        agno,
        agbno,
        agLength,
        level,
        level === levels - 1,
        kind,
      );
      const where = { structure: `XFS ${kind}bt block ${agno}/${agbno}`, offset };
      const left = i === 0 ? NULLAGBLOCK : current[i - 1]!.agbno;
      const right = i === current.length - 1 ? NULLAGBLOCK : current[i + 1]!.agbno;
      if (block.leftsib !== left || block.rightsib !== right) {
        throw new CorruptError(
          `siblings ${block.leftsib}/${block.rightsib}, expected ${left}/${right}`,
          { ...where, offset: offset + 0x08, reason: 'bad-sibling' },
        );
      }
      const n = block.starts.length;
      // Key ranges across blocks are checked for the bnobt; the cntbt's extents must equal the
      // bnobt's as a set, which the driver checks.
      if (
        kind === 'bno' &&
        n > 0 &&
        (block.starts[0]! < low || block.starts[n - 1]! >= high || block.starts[0]! < prevEnd)
      ) {
        throw new CorruptError(
          `keys ${block.starts[0]}..${block.starts[n - 1]} outside [${low}, ${high})`,
          {
            ...where,
            reason: 'bad-key-order',
          },
        );
      }
      if (level === 0) {
        for (let k = 0; k < n; k++) {
          out.starts.push(block.starts[k]!);
          out.counts.push(block.counts[k]!);
        }
        if (n > 0) prevEnd = block.starts[n - 1]! + block.counts[n - 1]!;
        if (kind === 'bno' && prevEnd > high) {
          throw new CorruptError(`free extent ends at ${prevEnd}, past its key range ${high}`, {
            ...where,
            reason: 'bad-key-order',
          });
        }
      } else {
        for (let k = 0; k < n; k++) {
          next.push({
            agbno: block.ptrs[k]!,
            low: block.starts[k]!,
            high: k + 1 < n ? block.starts[k + 1]! : high,
          });
        }
        if (n > 0) prevEnd = block.starts[n - 1]! + 1;
      }
    }
    if (level === 0) return out;
    current = next;
    level--;
  }
}

import { FieldReader } from '@diskube/core';
import { storedChecksum, xfsChecksum } from './checksum.js';
import type { XfsReason } from './reasons.js';
import type { Superblock } from './superblock.js';

// Sources: kernel fs/xfs/libxfs/xfs_format.h (struct xfs_agf, XFS_AGF_MAGIC, XFS_BTNUM_*),
// fs/xfs/libxfs/xfs_alloc.c (xfs_agf_verify, xfs_agfl_size); "XFS Algorithms & Data
// Structures", chapter "AG Free Space Management".

export const XFS_AGF_MAGIC = 0x58414746; // 'XAGF'
const AGF_CRC = 0xd8;
/** A null AG block pointer (NULLAGBLOCK). */
export const NULLAGBLOCK = 0xffffffff;

/** The AG free-space header, in the second sector of every AG. */
export interface Agf {
  seqno: number;
  /** Blocks in this AG (agf_length): sb_agblocks, or fewer in a short last AG. */
  length: number;
  bnoRoot: number;
  bnoLevel: number;
  cntRoot: number;
  cntLevel: number;
  flfirst: number;
  fllast: number;
  flcount: number;
  freeblks: number;
  longest: number;
}

/** Entries of the AGFL: the sector minus its v5 header (36 bytes), in 4-byte block numbers. */
export function agflSize(sb: Superblock): number {
  return (sb.sectsize - (sb.version === 5 ? 36 : 0)) / 4;
}

/**
 * Parse and verify the AGF of AG `agno` (`bytes` is its sector, at byte `offset` of the source).
 * `expectedLength` is the AG's length from the superblock; `maxLevels` the deepest free-space
 * btree an AG of this size can have.
 */
export function parseAgf(
  bytes: Uint8Array,
  offset: number,
  sb: Superblock,
  agno: number,
  expectedLength: number,
  maxLevels: number,
): Agf {
  const f = new FieldReader<XfsReason>(bytes, `XFS AGF ${agno}`, offset).need(sb.sectsize);
  const agf_magicnum = f.u32be(0x00);
  if (agf_magicnum !== XFS_AGF_MAGIC) {
    throw f.corrupt(`bad magic 0x${agf_magicnum.toString(16)}`, 0x00, 'bad-magic');
  }
  if (sb.version === 5) {
    if (xfsChecksum(bytes, AGF_CRC, 0, sb.sectsize) !== storedChecksum(bytes, AGF_CRC)) {
      throw f.corrupt('checksum mismatch', AGF_CRC, 'checksum');
    }
    if (!sameUuid(f.slice(0x40, 16), sb.metaUuid)) {
      throw f.corrupt('uuid differs from the superblock', 0x40, 'bad-uuid');
    }
  }
  const agf_versionnum = f.u32be(0x04);
  if (agf_versionnum !== 1) throw f.corrupt(`version ${agf_versionnum}`, 0x04, 'bad-version');
  const agf_seqno = f.u32be(0x08);
  if (agf_seqno !== agno) throw f.corrupt(`seqno ${agf_seqno} in AG ${agno}`, 0x08, 'bad-seqno');
  const agf_length = f.u32be(0x0c);
  if (agf_length !== expectedLength) {
    throw f.corrupt(`length ${agf_length}, superblock says ${expectedLength}`, 0x0c, 'bad-length');
  }
  const bnoRoot = f.u32be(0x10);
  const cntRoot = f.u32be(0x14);
  const bnoLevel = f.u32be(0x1c);
  const cntLevel = f.u32be(0x20);
  // Roots sit after the AG headers and inside the AG (xfs_verify_agbno).
  for (const [root, at] of [
    [bnoRoot, 0x10],
    [cntRoot, 0x14],
  ] as const) {
    if (root === 0 || root >= agf_length) throw f.corrupt(`btree root ${root}`, at, 'out-of-range');
  }
  for (const [level, at] of [
    [bnoLevel, 0x1c],
    [cntLevel, 0x20],
  ] as const) {
    if (level < 1 || level > maxLevels) {
      throw f.corrupt(`btree level ${level} (1..${maxLevels})`, at, 'bad-level');
    }
  }
  const agf_flfirst = f.u32be(0x28);
  const agf_fllast = f.u32be(0x2c);
  const agf_flcount = f.u32be(0x30);
  const agf_freeblks = f.u32be(0x34);
  const agf_longest = f.u32be(0x38);
  if (agf_freeblks > agf_length || agf_longest > agf_freeblks) {
    throw f.corrupt(`free blocks ${agf_freeblks}, longest ${agf_longest}`, 0x34, 'free-count');
  }
  return {
    seqno: agf_seqno,
    length: agf_length,
    bnoRoot,
    bnoLevel,
    cntRoot,
    cntLevel,
    flfirst: agf_flfirst,
    fllast: agf_fllast,
    flcount: agf_flcount,
    freeblks: agf_freeblks,
    longest: agf_longest,
  };
}

export function sameUuid(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

import { FieldReader, UnsupportedError } from '@diskube/core';
import { storedChecksum, xfsChecksum } from './checksum.js';
import type { XfsReason } from './reasons.js';

// Sources: kernel fs/xfs/libxfs/xfs_format.h (struct xfs_dsb, XFS_SB_VERSION_*, XFS_SB_FEAT_*),
// fs/xfs/libxfs/xfs_sb.c (xfs_validate_sb_read, xfs_validate_sb_common), Documentation/
// filesystems/xfs/xfs-online-fsck-design.rst and the "XFS Algorithms & Data Structures" book
// (chapter "Allocation Groups", superblock table). All fields are big-endian except sb_crc.

export const XFS_SB_MAGIC = 0x58465342; // 'XFSB'
const STRUCTURE = 'XFS superblock';
/** Bytes of struct xfs_dsb that we read (up to and including sb_meta_uuid). */
export const SUPERBLOCK_BYTES = 0x108;
/** Offset of sb_crc. */
const SB_CRC = 0xe0;

/** sb_versionnum: the low nibble is the version, the rest v4 feature bits. */
export const VERSION = {
  numbits: 0x000f,
  attr: 0x0010,
  nlink: 0x0020,
  quota: 0x0040,
  align: 0x0080,
  dalign: 0x0100,
  shared: 0x0200,
  logv2: 0x0400,
  sector: 0x0800,
  extflg: 0x1000,
  dirv2: 0x2000,
  borg: 0x4000,
  morebits: 0x8000,
} as const;

/** sb_features2 bits (v4 and v5). 0x1, 0x4, 0x10 and 0x20 are reserved and never valid. */
export const FEATURES2 = {
  lazysbcount: 0x2,
  attr2: 0x8,
  projid32bit: 0x80,
  crc: 0x100,
  ftype: 0x200,
} as const;
const FEATURES2_KNOWN = 0x2 | 0x8 | 0x80 | 0x100 | 0x200;

/** v5 sb_features_ro_compat. Unknown bits: the kernel would mount read-only; we refuse. */
export const RO_COMPAT = { finobt: 0x1, rmapbt: 0x2, reflink: 0x4, inobtcount: 0x8 } as const;
const RO_COMPAT_KNOWN = 0xf;

/**
 * v5 sb_features_incompat. Every known bit leaves the free-space btrees as they are; exchrange
 * and parent (pointers as extended attributes) are accepted for that reason. Metadir (0x100) and
 * later change where space lives and are refused as unknown.
 */
export const INCOMPAT = {
  ftype: 0x1,
  spinodes: 0x2,
  meta_uuid: 0x4,
  bigtime: 0x8,
  needsrepair: 0x10,
  nrext64: 0x20,
  exchrange: 0x40,
  parent: 0x80,
} as const;
const INCOMPAT_KNOWN = 0xff;

export interface Superblock {
  blockSize: number;
  /** Data-device blocks (sb_dblocks). */
  dblocks: number;
  rblocks: number;
  uuid: Uint8Array;
  /** sb_meta_uuid under meta_uuid, else sb_uuid: what v5 metadata blocks carry. */
  metaUuid: Uint8Array;
  /** sb_logstart: fsblock of an internal log, 0 for an external one. */
  logstart: number;
  agblocks: number;
  agcount: number;
  logblocks: number;
  versionnum: number;
  /** 4 or 5. */
  version: number;
  sectsize: number;
  inodesize: number;
  label: string;
  blocklog: number;
  agblklog: number;
  inprogress: number;
  icount: number;
  fdblocks: number;
  /** sb_features2 | sb_bad_features2 (see `parseSuperblock`). */
  features2: number;
  featuresCompat: number;
  featuresRoCompat: number;
  featuresIncompat: number;
  featuresLogIncompat: number;
  crc: number;
}

/** True when the first bytes look like an XFS superblock (probe: magic only). */
export function hasXfsMagic(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 &&
    bytes[0] === 0x58 &&
    bytes[1] === 0x46 &&
    bytes[2] === 0x53 &&
    bytes[3] === 0x42
  );
}

/**
 * Parse and validate the primary superblock (sector 0 of AG 0). `bytes` must hold at least the
 * superblock; the v5 CRC covers a whole sector and is checked by `checkSuperblockCrc`.
 */
export function parseSuperblock(bytes: Uint8Array, offset = 0): Superblock {
  const f = new FieldReader<XfsReason>(bytes, STRUCTURE, offset).need(SUPERBLOCK_BYTES);
  const sb_magicnum = f.u32be(0x00);
  if (sb_magicnum !== XFS_SB_MAGIC) {
    throw f.corrupt(`bad magic 0x${sb_magicnum.toString(16)}`, 0x00, 'bad-magic');
  }
  const sb_blocksize = f.u32be(0x04);
  const sb_dblocks = f.u64be(0x08, 'sb_dblocks');
  const sb_rblocks = f.u64be(0x10, 'sb_rblocks');
  const sb_uuid = f.slice(0x20, 16).slice();
  const sb_logstart = f.u64be(0x30, 'sb_logstart');
  const sb_agblocks = f.u32be(0x54);
  const sb_agcount = f.u32be(0x58);
  const sb_logblocks = f.u32be(0x60);
  const sb_versionnum = f.u16be(0x64);
  const sb_sectsize = f.u16be(0x66);
  const sb_inodesize = f.u16be(0x68);
  const sb_fname = f.slice(0x6c, 12);
  const sb_blocklog = f.u8(0x78);
  const sb_sectlog = f.u8(0x79);
  const sb_inodelog = f.u8(0x7a);
  const sb_agblklog = f.u8(0x7c);
  const sb_inprogress = f.u8(0x7e);
  const sb_icount = f.u64be(0x80, 'sb_icount');
  const sb_fdblocks = f.u64be(0x90, 'sb_fdblocks');
  const sb_features2 = f.u32be(0xc8);
  const sb_bad_features2 = f.u32be(0xcc);
  const version = sb_versionnum & VERSION.numbits;
  const v5 = version === 5;
  const sb_features_compat = v5 ? f.u32be(0xd0) : 0;
  const sb_features_ro_compat = v5 ? f.u32be(0xd4) : 0;
  const sb_features_incompat = v5 ? f.u32be(0xd8) : 0;
  const sb_features_log_incompat = v5 ? f.u32be(0xdc) : 0;
  const sb_crc = v5 ? storedChecksum(bytes, SB_CRC) : 0;
  const sb_meta_uuid = f.slice(0xf8, 16).slice();

  if (version !== 4 && version !== 5) {
    // Versions 1–3 predate Linux XFS support (the kernel refuses them too).
    throw new UnsupportedError(`superblock version ${version}`, {
      structure: STRUCTURE,
      offset: offset + 0x64,
      reason: 'unknown-feature',
    });
  }
  if (sb_blocklog < 9 || sb_blocklog > 16 || sb_blocksize !== 2 ** sb_blocklog) {
    throw f.corrupt(`block size ${sb_blocksize} (log ${sb_blocklog})`, 0x04, 'bad-block-size');
  }
  if (
    sb_sectlog < 9 ||
    sb_sectlog > 15 ||
    sb_sectsize !== 2 ** sb_sectlog ||
    sb_sectsize > sb_blocksize
  ) {
    throw f.corrupt(`sector size ${sb_sectsize} (log ${sb_sectlog})`, 0x66, 'bad-sector-size');
  }
  if (
    sb_inodelog < 8 ||
    sb_inodelog > 11 ||
    sb_inodesize !== 2 ** sb_inodelog ||
    sb_inodesize > sb_blocksize
  ) {
    throw f.corrupt(`inode size ${sb_inodesize}`, 0x68, 'bad-inode-size');
  }
  // XFS_MIN_AG_BLOCKS is 64; an AG is at most 1 TiB (XFS_MAX_AG_BYTES) and below 2^31 blocks.
  const maxAgBlocks = Math.min(2 ** 31 - 1, 2 ** 40 / sb_blocksize);
  if (sb_agblocks < 64 || sb_agblocks > maxAgBlocks || sb_agcount < 1) {
    throw f.corrupt(`${sb_agcount} AGs of ${sb_agblocks} blocks`, 0x54, 'bad-ag-geometry');
  }
  // sb_agblklog is the rounded-up log2 of sb_agblocks; fsblock numbers are packed with it.
  if (sb_agblklog !== Math.ceil(Math.log2(sb_agblocks))) {
    throw f.corrupt(
      `agblklog ${sb_agblklog} for ${sb_agblocks} blocks per AG`,
      0x7c,
      'bad-ag-geometry',
    );
  }
  // The last AG may be short, but holds at least XFS_MIN_AG_BLOCKS (xfs_validate_sb_common).
  const full = (sb_agcount - 1) * sb_agblocks;
  if (sb_dblocks < full + 64 || sb_dblocks > full + sb_agblocks) {
    throw f.corrupt(
      `${sb_dblocks} blocks do not fit ${sb_agcount} AGs of ${sb_agblocks}`,
      0x08,
      'bad-block-count',
    );
  }
  if (sb_dblocks * sb_blocksize > Number.MAX_SAFE_INTEGER) {
    throw new UnsupportedError(`a filesystem of ${sb_dblocks} blocks is above 2^53 bytes`, {
      structure: STRUCTURE,
      offset: offset + 0x08,
      reason: 'too-large',
    });
  }
  if (sb_inprogress !== 0) {
    throw f.corrupt('mkfs did not finish (sb_inprogress set)', 0x7e, 'in-progress');
  }
  // The v4 padding bug: some kernels wrote features2 at the sb_bad_features2 offset; the kernel
  // merges the two (xfs_sb_has_mismatched_features2), and so do we.
  // features2 only means something when MOREBITS is set (always on v5; old v4 may lack it).
  const features2 =
    version === 5 || (sb_versionnum & VERSION.morebits) !== 0 ? sb_features2 | sb_bad_features2 : 0;
  let label = '';
  for (const b of sb_fname) {
    if (b === 0) break;
    label += String.fromCharCode(b);
  }
  return {
    blockSize: sb_blocksize,
    dblocks: sb_dblocks,
    rblocks: sb_rblocks,
    uuid: sb_uuid,
    metaUuid: v5 && (sb_features_incompat & INCOMPAT.meta_uuid) !== 0 ? sb_meta_uuid : sb_uuid,
    logstart: sb_logstart,
    agblocks: sb_agblocks,
    agcount: sb_agcount,
    logblocks: sb_logblocks,
    versionnum: sb_versionnum,
    version,
    sectsize: sb_sectsize,
    inodesize: sb_inodesize,
    label,
    blocklog: sb_blocklog,
    agblklog: sb_agblklog,
    inprogress: sb_inprogress,
    icount: sb_icount,
    fdblocks: sb_fdblocks,
    features2: features2 >>> 0,
    featuresCompat: sb_features_compat,
    featuresRoCompat: sb_features_ro_compat,
    featuresIncompat: sb_features_incompat,
    featuresLogIncompat: sb_features_log_incompat,
    crc: sb_crc,
  };
}

/** True when the v5 superblock sector's stored CRC matches (v4 has none: always true). */
export function superblockCrcOk(sector: Uint8Array, sb: Superblock): boolean {
  if (sb.version !== 5) return true;
  return xfsChecksum(sector, SB_CRC, 0, sb.sectsize) === storedChecksum(sector, SB_CRC);
}

/**
 * Refuse features that could change what the free-space btrees mean: unknown v4 version or
 * features2 bits, the v4 "shared" bit, unknown v5 incompat and ro-compat bits. Unknown compat
 * bits are harmless by definition. Log-incompat bits only matter to log recovery, and a log that
 * needs recovery is refused anyway.
 */
export function unknownFeatures(sb: Superblock): string[] {
  const out: string[] = [];
  const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;
  if (sb.versionnum & VERSION.shared) out.push('v4 shared superblock');
  const f2 = sb.features2 & ~FEATURES2_KNOWN;
  if (f2 !== 0) out.push(`features2 ${hex(f2)}`);
  if (sb.version === 5) {
    if ((sb.features2 & FEATURES2.crc) === 0) out.push('v5 without the crc features2 bit');
    const ro = sb.featuresRoCompat & ~RO_COMPAT_KNOWN;
    if (ro !== 0) out.push(`ro-compat ${hex(ro)}`);
    const inc = sb.featuresIncompat & ~INCOMPAT_KNOWN;
    if (inc !== 0) out.push(`incompat ${hex(inc)}`);
  } else if (sb.features2 & FEATURES2.crc) {
    out.push('crc features2 bit on a v4 superblock');
  }
  return out;
}

/** Names of the features set, for display (facts). */
export function featureNames(sb: Superblock): string[] {
  const names: string[] = [`v${sb.version}`];
  for (const [name, bit] of Object.entries(FEATURES2)) if (sb.features2 & bit) names.push(name);
  for (const [name, bit] of Object.entries(RO_COMPAT))
    if (sb.featuresRoCompat & bit) names.push(name);
  for (const [name, bit] of Object.entries(INCOMPAT)) {
    if (sb.featuresIncompat & bit && !names.includes(name)) names.push(name);
  }
  return names;
}

/** Byte offset of AG `agno`'s first block. */
export function agOffset(sb: Superblock, agno: number): number {
  return agno * sb.agblocks * sb.blockSize;
}

/** Blocks in AG `agno`: sb_agblocks, except for a short last AG. */
export function agLength(sb: Superblock, agno: number): number {
  return agno < sb.agcount - 1 ? sb.agblocks : sb.dblocks - (sb.agcount - 1) * sb.agblocks;
}

/**
 * Split a filesystem block number. It is not linear: it packs `agno << sb_agblklog | agbno`, and
 * sb_agblklog rounds sb_agblocks up to a power of two, so there are unused numbers between AGs.
 */
export function fsblockToAg(sb: Superblock, fsblock: number): { agno: number; agbno: number } {
  const span = 2 ** sb.agblklog;
  return { agno: Math.floor(fsblock / span), agbno: fsblock % span };
}

import { CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import { crc32cRaw } from './checksum.js';
import { INCOMPAT, RO_COMPAT } from './features.js';
import type { ExtReason } from './reasons.js';

// Sources: kernel Documentation/filesystems/ext4/super.rst (struct ext4_super_block), fs/ext4/
// super.c (ext4_fill_super sanity checks), e2fsprogs lib/ext2fs/ext2_fs.h and openfs.c.

/** The primary superblock always starts at byte 1024, whatever the block size. */
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

const STRUCTURE = 'ext4 superblock';

/** s_state bits. */
export const STATE_VALID = 0x1;
export const STATE_ERROR = 0x2;

/** Largest block size: 64 KiB (s_log_block_size 6). */
const MAX_LOG_BLOCK_SIZE = 6;
/** Largest cluster: 2^29 bytes (e2fsprogs EXT2_MAX_CLUSTER_LOG_SIZE). */
const MAX_LOG_CLUSTER_BYTES = 29;
/** Largest group descriptor e2fsprogs accepts (EXT2_MAX_DESC_SIZE). */
const MAX_DESC_SIZE = 1024;

/** What the driver needs from the superblock; fields keep their on-disk meaning. */
export interface Superblock {
  inodesCount: number;
  /** s_blocks_count_lo, plus s_blocks_count_hi << 32 under 64bit. */
  blocksCount: number;
  /** s_free_blocks_count_lo, plus _hi << 32 under 64bit (a lazy counter on ext4). */
  freeBlocksCount: number;
  firstDataBlock: number;
  blockSize: number;
  /** Bytes per allocation cluster: equal to blockSize unless bigalloc. */
  clusterSize: number;
  /** Blocks per cluster (1 unless bigalloc). */
  clusterRatio: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
  state: number;
  errors: number;
  revLevel: number;
  inodeSize: number;
  /** s_first_ino: first non-reserved inode (11 for revision 0). */
  firstIno: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: Uint8Array;
  volumeName: string;
  lastMounted: string;
  reservedGdtBlocks: number;
  journalUuid: Uint8Array;
  journalInum: number;
  journalDev: number;
  /** Bytes per group descriptor: 32, or s_desc_size under 64bit. */
  descSize: number;
  firstMetaBg: number;
  logGroupsPerFlex: number;
  checksumType: number;
  /** s_backup_bgs: the two groups holding backups under sparse_super2 (0 = none). */
  backupBgs: [number, number];
  /** s_checksum_seed (only meaningful with metadata_csum_seed). */
  checksumSeed: number;
  /** s_checksum as stored. */
  checksum: number;
  mkfsTime: number;
  writeTime: number;
  mountTime: number;
  /** s_mmp_block: block of the multi-mount protection record (mmp feature). */
  mmpBlock: number;
}

/** A NUL-padded UTF-8 field (s_volume_name, s_last_mounted). */
function cString(f: FieldReader, at: number, length: number): string {
  const bytes = f.slice(at, length);
  const end = bytes.indexOf(0);
  return new TextDecoder('utf-8', { fatal: false }).decode(
    end < 0 ? bytes : bytes.subarray(0, end),
  );
}

export function hasCompat(sb: Superblock, bit: number): boolean {
  return (sb.featureCompat & bit) !== 0;
}
export function hasIncompat(sb: Superblock, bit: number): boolean {
  return (sb.featureIncompat & bit) !== 0;
}
export function hasRoCompat(sb: Superblock, bit: number): boolean {
  return (sb.featureRoCompat & bit) !== 0;
}

/** True when group descriptors carry checksums and BLOCK_UNINIT may be honoured. */
export function hasGroupDescChecksum(sb: Superblock): boolean {
  return hasRoCompat(sb, RO_COMPAT.metadata_csum) || hasRoCompat(sb, RO_COMPAT.uninit_bg);
}

/** Only read the first 4 bytes at 0x38: is this plausibly an ext superblock? */
export function hasExtMagic(bytes: Uint8Array): boolean {
  const f = new FieldReader(bytes, STRUCTURE, SUPERBLOCK_OFFSET);
  return f.has(0x38, 2) && f.u16le(0x38) === EXT_MAGIC;
}

/**
 * Parse and sanity-check the 1024-byte superblock. `offset` is where it was read from (for
 * error context). Throws CorruptError for contradictions, UnsupportedError for valid values
 * we do not handle (a newer revision, a non-crc32c checksum type, a filesystem too large for
 * safe integer byte offsets). Feature and state policy is the driver's job.
 */
export function parseSuperblock(bytes: Uint8Array, offset = SUPERBLOCK_OFFSET): Superblock {
  const f = new FieldReader<ExtReason>(bytes, STRUCTURE, offset).need(SUPERBLOCK_SIZE);
  const s_magic = f.u16le(0x38);
  if (s_magic !== EXT_MAGIC)
    throw f.corrupt(`bad magic 0x${s_magic.toString(16)}`, 0x38, 'bad-magic');

  const s_rev_level = f.u32le(0x4c);
  if (s_rev_level > 1) {
    throw new UnsupportedError(`superblock revision ${s_rev_level} is newer than 1`, {
      structure: STRUCTURE,
      offset: offset + 0x4c,
      reason: 'revision',
    });
  }
  const dynamic = s_rev_level >= 1;
  // Revision 0 superblocks have no feature fields: whatever is there must be ignored.
  const s_feature_compat = dynamic ? f.u32le(0x5c) : 0;
  const s_feature_incompat = dynamic ? f.u32le(0x60) : 0;
  const s_feature_ro_compat = dynamic ? f.u32le(0x64) : 0;
  const is64 = (s_feature_incompat & INCOMPAT['64bit']) !== 0;
  const bigalloc = (s_feature_ro_compat & RO_COMPAT.bigalloc) !== 0;

  const s_log_block_size = f.u32le(0x18);
  if (s_log_block_size > MAX_LOG_BLOCK_SIZE) {
    throw f.corrupt(
      `block size 2^(10+${s_log_block_size}) is above 64 KiB`,
      0x18,
      'bad-block-size',
    );
  }
  const blockSize = 1024 << s_log_block_size;

  // s_log_cluster_size was s_log_frag_size before bigalloc; it always equalled the block size.
  const s_log_cluster_size = f.u32le(0x1c);
  if (bigalloc) {
    if (s_log_cluster_size < s_log_block_size || s_log_cluster_size + 10 > MAX_LOG_CLUSTER_BYTES) {
      throw f.corrupt(
        `cluster size 2^(10+${s_log_cluster_size}) out of range`,
        0x1c,
        'bad-cluster-size',
      );
    }
  } else if (s_log_cluster_size !== s_log_block_size) {
    throw f.corrupt(
      'fragment size differs from block size without bigalloc',
      0x1c,
      'bad-cluster-size',
    );
  }
  const clusterRatio = bigalloc ? 2 ** (s_log_cluster_size - s_log_block_size) : 1;
  const clusterSize = blockSize * clusterRatio;

  const s_blocks_per_group = f.u32le(0x20);
  const s_clusters_per_group = bigalloc ? f.u32le(0x24) : s_blocks_per_group;
  // One block holds a group's bitmap, so a group has at most 8 × blockSize clusters; the
  // multiple-of-8 rule lets each group's bitmap start on a byte boundary.
  if (
    s_clusters_per_group < 8 ||
    s_clusters_per_group > 8 * blockSize ||
    s_clusters_per_group % 8 !== 0
  ) {
    throw f.corrupt(
      `${s_clusters_per_group} clusters per group`,
      bigalloc ? 0x24 : 0x20,
      'bad-group-size',
    );
  }
  if (s_blocks_per_group !== s_clusters_per_group * clusterRatio) {
    throw f.corrupt(
      `${s_blocks_per_group} blocks per group != clusters × ratio`,
      0x20,
      'bad-group-size',
    );
  }

  const s_inodes_per_group = f.u32le(0x28);
  if (s_inodes_per_group < 1 || s_inodes_per_group > 8 * blockSize) {
    throw f.corrupt(`${s_inodes_per_group} inodes per group`, 0x28, 'bad-inodes-per-group');
  }
  const inodeSize = dynamic ? f.u16le(0x58) : 128;
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) {
    throw f.corrupt(`inode size ${inodeSize}`, 0x58, 'bad-inode-size');
  }

  const s_first_data_block = f.u32le(0x14);
  // The superblock is at byte 1024: block 1 with 1 KiB blocks (block 0 is the boot block and
  // belongs to no group), block 0 otherwise. bigalloc filesystems always start at block 0.
  const expectedFirst = blockSize === 1024 && clusterRatio === 1 ? 1 : 0;
  if (s_first_data_block !== expectedFirst) {
    throw f.corrupt(`s_first_data_block ${s_first_data_block}`, 0x14, 'bad-first-data-block');
  }

  const s_blocks_count_lo = f.u32le(0x4);
  const s_blocks_count_hi = is64 ? f.u32le(0x150) : 0;
  const blocksCount = s_blocks_count_hi * 2 ** 32 + s_blocks_count_lo;
  if (blocksCount <= s_first_data_block) {
    throw f.corrupt(`block count ${blocksCount}`, 0x4, 'bad-block-count');
  }
  if (!Number.isSafeInteger(blocksCount * blockSize)) {
    throw new UnsupportedError(`${blocksCount} blocks of ${blockSize} bytes exceed 2^53 bytes`, {
      structure: STRUCTURE,
      offset: offset + 0x4,
      reason: 'too-large',
    });
  }

  let descSize = 32;
  if (is64) {
    const s_desc_size = f.u16le(0xfe);
    if (
      s_desc_size < 64 ||
      s_desc_size > MAX_DESC_SIZE ||
      (s_desc_size & (s_desc_size - 1)) !== 0
    ) {
      throw f.corrupt(`group descriptor size ${s_desc_size}`, 0xfe, 'bad-desc-size');
    }
    descSize = s_desc_size;
  }

  // Used whether or not resize_inode is set, as the kernel and e2fsprogs both do.
  const s_reserved_gdt_blocks = dynamic ? f.u16le(0xce) : 0;
  // The resize inode's double-indirect block lists them: at most blockSize / 4 entries.
  if (s_reserved_gdt_blocks > blockSize / 4) {
    throw f.corrupt(`${s_reserved_gdt_blocks} reserved GDT blocks`, 0xce, 'bad-reserved-gdt');
  }

  const s_checksum_type = f.u8(0x175);
  if ((s_feature_ro_compat & RO_COMPAT.metadata_csum) !== 0 && s_checksum_type !== 1) {
    throw new UnsupportedError(`checksum type ${s_checksum_type} (only crc32c = 1 exists)`, {
      structure: STRUCTURE,
      offset: offset + 0x175,
      reason: 'checksum-type',
    });
  }

  return {
    inodesCount: f.u32le(0x0),
    blocksCount,
    freeBlocksCount: (is64 ? f.u32le(0x158) * 2 ** 32 : 0) + f.u32le(0xc),
    firstDataBlock: s_first_data_block,
    blockSize,
    clusterSize,
    clusterRatio,
    blocksPerGroup: s_blocks_per_group,
    clustersPerGroup: s_clusters_per_group,
    inodesPerGroup: s_inodes_per_group,
    state: f.u16le(0x3a),
    errors: f.u16le(0x3c),
    revLevel: s_rev_level,
    inodeSize,
    firstIno: dynamic ? f.u32le(0x54) : 11,
    featureCompat: s_feature_compat,
    featureIncompat: s_feature_incompat,
    featureRoCompat: s_feature_ro_compat,
    uuid: f.slice(0x68, 16).slice(),
    volumeName: cString(f, 0x78, 16),
    lastMounted: cString(f, 0x88, 64),
    reservedGdtBlocks: s_reserved_gdt_blocks,
    journalUuid: f.slice(0xd0, 16).slice(),
    journalInum: f.u32le(0xe0),
    journalDev: f.u32le(0xe4),
    descSize,
    firstMetaBg: f.u32le(0x104),
    logGroupsPerFlex: f.u8(0x174),
    checksumType: s_checksum_type,
    backupBgs: [f.u32le(0x24c), f.u32le(0x250)],
    checksumSeed: f.u32le(0x270),
    checksum: f.u32le(0x3fc),
    mkfsTime: f.u32le(0x108),
    writeTime: f.u32le(0x30),
    mountTime: f.u32le(0x2c),
    mmpBlock: f.u32le(0x16c) * 2 ** 32 + f.u32le(0x168),
  };
}

/** crc32c of the superblock up to s_checksum (0x3FC), as the kernel stores it. */
export function superblockChecksum(bytes: Uint8Array): number {
  return crc32cRaw(0xffffffff, bytes, 0, 0x3fc);
}

/** The seed every other metadata_csum checksum starts from. */
export function checksumSeed(sb: Superblock): number {
  return hasIncompat(sb, INCOMPAT.metadata_csum_seed)
    ? sb.checksumSeed
    : crc32cRaw(0xffffffff, sb.uuid);
}

/** Derived geometry; throws CorruptError when the counts contradict each other. */
export interface Geometry {
  groupCount: number;
  /** Group descriptors per descriptor block. */
  descPerBlock: number;
  /** Blocks holding the whole descriptor table. */
  descBlocks: number;
  /** Blocks of one group's inode table. */
  inodeTableBlocks: number;
}

export function geometry(sb: Superblock, offset = SUPERBLOCK_OFFSET): Geometry {
  const groupCount = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
  // The kernel refuses mounts where s_inodes_count disagrees with groups × inodes per group;
  // checking it too guards the group count against a corrupted block count.
  if (groupCount * sb.inodesPerGroup !== sb.inodesCount) {
    throw new CorruptError(
      `inode count ${sb.inodesCount} != ${groupCount} groups × ${sb.inodesPerGroup} inodes`,
      { structure: STRUCTURE, offset, reason: 'bad-inode-count' },
    );
  }
  const descPerBlock = sb.blockSize / sb.descSize;
  const descBlocks = Math.ceil(groupCount / descPerBlock);
  if (hasIncompat(sb, INCOMPAT.meta_bg) && sb.firstMetaBg > descBlocks) {
    throw new CorruptError(`s_first_meta_bg ${sb.firstMetaBg} > ${descBlocks} descriptor blocks`, {
      structure: STRUCTURE,
      offset: offset + 0x104,
      reason: 'bad-first-meta-bg',
    });
  }
  return {
    groupCount,
    descPerBlock,
    descBlocks,
    inodeTableBlocks: Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize),
  };
}

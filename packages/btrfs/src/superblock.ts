import { CorruptError, crc32c, FieldReader, UnsupportedError } from '@diskube/core';
import { type Chunk, parseChunk } from './chunk.js';
import type { BtrfsReason } from './reasons.js';

/** The primary superblock's place on the device, and its size. */
export const SUPER_OFFSET = 0x10000;
export const SUPER_SIZE = 0x1000;
/** Superblock copies: primary at 64 KiB, mirrors at 64 MiB and 256 GiB (btrfs_sb_offset). */
export const SUPER_MIRRORS = [0x10000, 0x4000000, 0x4000000000] as const;
/** The first 1 MiB of a device is never allocated (boot loaders, the primary superblock). */
export const RESERVED_BYTES = 0x100000;

const STRUCT = 'btrfs superblock';
const MAGIC = '_BHRfS_M';
/** btrfs_disk_key: objectid u64, type u8, offset u64. */
export const DISK_KEY_SIZE = 17;
/** Item type of a chunk (BTRFS_CHUNK_ITEM_KEY) and the owner objectid of chunk items. */
export const CHUNK_ITEM_KEY = 228;
export const FIRST_CHUNK_TREE_OBJECTID = 256n;

/** Incompatible feature bits (BTRFS_FEATURE_INCOMPAT_*) this driver reads correctly. */
export const INCOMPAT = {
  mixedBackref: 1n << 0n,
  defaultSubvol: 1n << 1n,
  mixedGroups: 1n << 2n,
  compressLzo: 1n << 3n,
  compressZstd: 1n << 4n,
  bigMetadata: 1n << 5n,
  extendedIref: 1n << 6n,
  raid56: 1n << 7n,
  skinnyMetadata: 1n << 8n,
  noHoles: 1n << 9n,
  metadataUuid: 1n << 10n,
  raid1c34: 1n << 11n,
} as const;
// Not listed, so refused: ZONED (1<<12, sequential zones), EXTENT_TREE_V2 (1<<13, a different
// extent tree), RAID_STRIPE_TREE (1<<14), SIMPLE_QUOTA (1<<16) and any bit not yet defined.
// RAID56 and RAID1C34 only permit profiles; the chunks themselves are checked for profiles.
const KNOWN_INCOMPAT = Object.values(INCOMPAT).reduce((a, b) => a | b, 0n);

/** Read-only-compatible bits: free-space tree (+ valid), verity, block-group tree. */
export const COMPAT_RO = {
  freeSpaceTree: 1n << 0n,
  freeSpaceTreeValid: 1n << 1n,
  verity: 1n << 2n,
  blockGroupTree: 1n << 3n,
} as const;
const KNOWN_COMPAT_RO = Object.values(COMPAT_RO).reduce((a, b) => a | b, 0n);

export interface Superblock {
  fsid: Uint8Array;
  /** The uuid written in tree block headers: metadata_uuid when METADATA_UUID is set. */
  metadataUuid: Uint8Array;
  generation: number;
  root: number;
  chunkRoot: number;
  logRoot: number;
  totalBytes: number;
  bytesUsed: number;
  numDevices: number;
  sectorsize: number;
  nodesize: number;
  compatRo: bigint;
  incompat: bigint;
  csumType: number;
  rootLevel: number;
  chunkRootLevel: number;
  chunkRootGeneration: number;
  devid: number;
  devTotalBytes: number;
  label: string;
}

/** True when the bytes at the superblock's place carry the btrfs magic (for probe). */
export function hasBtrfsMagic(sb: Uint8Array): boolean {
  if (sb.length < 0x48) return false;
  return new FieldReader(sb, STRUCT, SUPER_OFFSET).ascii(0x40, 8) === MAGIC;
}

/** The superblock's crc32c over bytes 0x20..0x1000, compared with the first 4 bytes of csum. */
export function superblockCsumOk(sb: Uint8Array): boolean {
  const f = new FieldReader<BtrfsReason>(sb, STRUCT, SUPER_OFFSET).need(SUPER_SIZE);
  return crc32c(f.slice(0x20, SUPER_SIZE - 0x20)) === f.u32le(0x00);
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

// Sources: btrfs-progs kernel-shared/ctree.h `struct btrfs_super_block`, `struct
// btrfs_dev_item`; the kernel's Documentation (btrfs.readthedocs.io, "On-disk format").
/**
 * The superblock at `SUPER_OFFSET` (4096 bytes), its layout fields checked (the checksum, the
 * features and the sys_chunk_array are checked by `checkSupported` and `parseSysChunkArray`, so
 * `probe` still recognises a btrfs it cannot read).
 */
export function parseSuperblock(bytes: Uint8Array): Superblock {
  const f = new FieldReader<BtrfsReason>(bytes, STRUCT, SUPER_OFFSET).need(SUPER_SIZE);
  if (f.ascii(0x40, 8) !== MAGIC) throw f.corrupt('bad superblock magic', 0x40, 'bad-magic');
  const bytenr = f.u64le(0x30, 'bytenr');
  if (bytenr !== SUPER_OFFSET) {
    throw f.corrupt(`primary superblock says it lives at ${bytenr}`, 0x30, 'bad-bytenr');
  }
  const csum_type = f.u16le(0xc4);
  const incompat_flags = f.u64leBig(0xbc);
  const compat_ro_flags = f.u64leBig(0xb4);
  const sectorsize = f.u32le(0x90);
  const nodesize = f.u32le(0x94);
  if (!isPow2(sectorsize) || sectorsize < 4096 || sectorsize > 65536) {
    throw f.corrupt(`sectorsize ${sectorsize}`, 0x90, 'bad-sector-size');
  }
  if (!isPow2(nodesize) || nodesize < sectorsize || nodesize > 65536) {
    throw f.corrupt(`nodesize ${nodesize}`, 0x94, 'bad-node-size');
  }
  const num_devices = f.u64le(0x88, 'num_devices');
  const total_bytes = f.u64le(0x70, 'total_bytes');
  // dev_item at 0xc9: devid, total_bytes, bytes_used, … (98 bytes).
  const devid = f.u64le(0xc9, 'dev_item.devid');
  const devTotal = f.u64le(0xd1, 'dev_item.total_bytes');
  if (devTotal < RESERVED_BYTES + SUPER_SIZE || devTotal > total_bytes) {
    // A device is part of the filesystem (with one device, all of it: see checkSupported).
    throw f.corrupt(
      `total_bytes ${total_bytes}, device total_bytes ${devTotal}`,
      0xd1,
      'bad-total-bytes',
    );
  }
  const fsid = f.slice(0x20, 16);
  const metadataUuid = (incompat_flags & INCOMPAT.metadataUuid) !== 0n ? f.slice(0x23b, 16) : fsid;
  const labelBytes = f.slice(0x12b, 256);
  const end = labelBytes.indexOf(0);
  const label = new TextDecoder().decode(labelBytes.subarray(0, end < 0 ? 256 : end));
  return {
    fsid,
    metadataUuid,
    generation: f.u64le(0x48, 'generation'),
    root: f.u64le(0x50, 'root'),
    chunkRoot: f.u64le(0x58, 'chunk_root'),
    logRoot: f.u64le(0x60, 'log_root'),
    totalBytes: total_bytes,
    bytesUsed: f.u64le(0x78, 'bytes_used'),
    numDevices: num_devices,
    sectorsize,
    nodesize,
    compatRo: compat_ro_flags,
    incompat: incompat_flags,
    csumType: csum_type,
    rootLevel: f.u8(0xc6),
    chunkRootLevel: f.u8(0xc7),
    chunkRootGeneration: f.u64le(0xa4, 'chunk_root_generation'),
    devid,
    devTotalBytes: devTotal,
    label,
  };
}

/**
 * UNSUPPORTED for a checksum type, feature bit or device count this driver does not handle;
 * then CORRUPT when the one device's size is not the filesystem's.
 */
export function checkSupported(sb: Superblock): void {
  const where = (at: number) => ({ structure: STRUCT, offset: SUPER_OFFSET + at });
  if (sb.csumType !== 0) {
    // xxhash64 (1), sha256 (2) and blake2b (3) are valid but not implemented here.
    throw new UnsupportedError(`checksum type ${sb.csumType} (only crc32c is supported)`, {
      ...where(0xc4),
      reason: 'csum-type',
    });
  }
  const unknownIncompat = sb.incompat & ~KNOWN_INCOMPAT;
  if (unknownIncompat !== 0n) {
    throw new UnsupportedError(`unknown incompat features 0x${unknownIncompat.toString(16)}`, {
      ...where(0xbc),
      reason: 'unknown-feature',
    });
  }
  const unknownRo = sb.compatRo & ~KNOWN_COMPAT_RO;
  if (unknownRo !== 0n) {
    // A new read-only-compatible feature may change what "allocated" means: refuse it.
    throw new UnsupportedError(`unknown compat_ro features 0x${unknownRo.toString(16)}`, {
      ...where(0xb4),
      reason: 'unknown-feature',
    });
  }
  if (sb.numDevices !== 1) {
    throw new UnsupportedError(`${sb.numDevices} devices (only one-device filesystems)`, {
      ...where(0x88),
      reason: 'multi-device',
    });
  }
  if (sb.devTotalBytes !== sb.totalBytes) {
    // With one device the filesystem's size is the device's.
    throw new CorruptError(`total_bytes ${sb.totalBytes}, device total_bytes ${sb.devTotalBytes}`, {
      ...where(0x70),
      reason: 'bad-total-bytes',
    });
  }
}

/**
 * sys_chunk_array (0x32b, 2048 bytes, sys_chunk_array_size of them used): pairs of a disk key
 * (FIRST_CHUNK_TREE, CHUNK_ITEM, logical start) and a `btrfs_chunk` with its stripes.
 */
export function parseSysChunkArray(bytes: Uint8Array, sectorsize: number): Chunk[] {
  const f = new FieldReader<BtrfsReason>(bytes, STRUCT, SUPER_OFFSET).need(SUPER_SIZE);
  const size = f.u32le(0xa0);
  if (size === 0 || size > 2048)
    throw f.corrupt(`sys_chunk_array_size ${size}`, 0xa0, 'bad-sys-array');
  const array = f.sub(0x32b, size, `${STRUCT} sys_chunk_array`);
  const chunks: Chunk[] = [];
  let at = 0;
  while (at < size) {
    const objectid = array.u64leBig(at);
    const type = array.u8(at + 8);
    if (objectid !== FIRST_CHUNK_TREE_OBJECTID || type !== CHUNK_ITEM_KEY) {
      throw array.corrupt(`key (${objectid}, ${type}) is not a chunk`, at, 'bad-sys-array');
    }
    const logical = array.u64le(at + 9, 'chunk key offset');
    at += DISK_KEY_SIZE;
    // The chunk's length depends on its stripe count; parseChunk reads and bounds it.
    const rest = array.sub(at, size - at, `${STRUCT} sys_chunk_array`);
    const chunk = parseChunk(rest, logical, sectorsize, true);
    chunks.push(chunk);
    at += chunk.itemSize;
  }
  return chunks;
}

import { InvalidArgumentError } from '@diskube/core';
import { QCOW2_EXT_BACKING_FORMAT, QCOW2_MAGIC, QCOW2_MAX_L1_BYTES } from './qcow2-header.js';

// Sources: QEMU docs/interop/qcow2.txt ("Header", "Host cluster management", "Cluster
// mapping"); QEMU block/qcow2-refcount.c (what `qemu-img check` counts). Big-endian throughout.
//
// Pure encoders for the qcow2 v3 files a restore writes. The file layout is fixed and simple,
// which keeps the refcounts trivially exact:
//
//   cluster 0                 header (header_length 104, no feature table); for an overlay,
//                             the backing format extension, the end marker and the backing
//                             file name follow it (else the end marker alone: zeros)
//   clusters 1 .. n           data clusters, in the order the writer first touched them
//   next l2Tables clusters    L2 tables, one per L1 entry that maps at least one cluster
//   next l1Clusters           L1 table
//   next refcountBlocks       refcount blocks (refcount_order 4: 16-bit entries)
//   next refcountTableClusters refcount table
//
// Every cluster of the file is referenced exactly once, so every refcount is 1 and every L1/L2
// entry carries the COPIED flag (qemu-img check reports a missing COPIED flag on a cluster with
// refcount 1 as an error). Optionally data clusters are deflate-compressed and packed at byte
// granularity in the data area (as qemu-img convert -c does); a host cluster then holds pieces
// of several, its refcount is the number of entries touching it, and those entries carry no
// COPIED flag. An overlay's zero clusters are L2 entries with only bit 0 (reads as zeros,
// masking the backing file) and no host cluster.

/** refcount_order 4: 16-bit refcounts, QEMU's default. */
const REFCOUNT_ORDER = 4;
const HEADER_LENGTH = 104;
/** The longest backing file name the spec allows (backing_file_size). */
const MAX_BACKING_NAME = 1023;
const COPIED_HI = 0x80000000;
/** L2 entry bit 0 (QCOW_OFLAG_ZERO, v3): the cluster reads as zeros whatever the backing file. */
const ZERO_FLAG_LO = 1;
const TWO32 = 2 ** 32;
/** Host offsets live in bits 9..55 of L1/L2 entries. */
const MAX_HOST_OFFSET = 2 ** 56;

export interface Qcow2WriterGeometry {
  clusterBits: number;
  clusterSize: number;
  /**
   * Virtual size written to the header: the requested size rounded up to a multiple of 512,
   * because QEMU counts whole 512-byte sectors and would drop a partial last one.
   */
  virtualSize: number;
  /** Guest clusters covering `virtualSize`. */
  guestClusters: number;
  /** L2 entries per table (one cluster of u64). */
  l2Entries: number;
  /** L1 entries needed for `virtualSize`. */
  l1Size: number;
}

/** Geometry of a qcow2 image of `size` bytes with `2^clusterBits`-byte clusters (9..21). */
export function qcow2WriterGeometry(size: number, clusterBits = 16): Qcow2WriterGeometry {
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    throw new InvalidArgumentError(`qcow2 cluster_bits ${clusterBits} outside 9..21`, {
      reason: 'cluster-size',
    });
  }
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_HOST_OFFSET / 2) {
    throw new InvalidArgumentError(`qcow2 virtual size ${size} is out of range`, {
      reason: 'size',
    });
  }
  const clusterSize = 2 ** clusterBits;
  const virtualSize = Math.ceil(size / 512) * 512;
  const l2Entries = clusterSize / 8;
  const guestClusters = Math.ceil(virtualSize / clusterSize);
  const l1Size = Math.ceil(guestClusters / l2Entries);
  if (l1Size * 8 > QCOW2_MAX_L1_BYTES) {
    throw new InvalidArgumentError(
      `a ${virtualSize}-byte disk needs an L1 table above QEMU's 32 MiB limit; use larger clusters`,
      { reason: 'size' },
    );
  }
  return { clusterBits, clusterSize, virtualSize, guestClusters, l2Entries, l1Size };
}

export interface Qcow2MetadataLayout {
  /** Byte offset of the first L2 table; table i is at `l2Offset + i * clusterSize`. */
  l2Offset: number;
  l2Tables: number;
  l1Offset: number;
  l1Clusters: number;
  refcountBlockOffset: number;
  refcountBlocks: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  /** Clusters in the whole file, each with refcount 1; the file is this many clusters long. */
  totalClusters: number;
}

/**
 * Place the metadata after the header and `dataClusters` data clusters. The refcount blocks
 * count themselves and the refcount table, so their number is found by iterating to a fixed
 * point (it only grows, and settles in two or three rounds).
 */
export function planQcow2Metadata(
  geometry: Qcow2WriterGeometry,
  dataClusters: number,
  l2Tables: number,
): Qcow2MetadataLayout {
  const { clusterSize, l1Size } = geometry;
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / clusterSize));
  const perBlock = (clusterSize * 8) / 2 ** REFCOUNT_ORDER;
  const fixed = 1 + dataClusters + l2Tables + l1Clusters;
  let refcountBlocks = 1;
  let refcountTableClusters = 1;
  for (let round = 0; round < 64; round++) {
    const total = fixed + refcountBlocks + refcountTableClusters;
    const blocks = Math.ceil(total / perBlock);
    const table = Math.ceil((blocks * 8) / clusterSize);
    if (blocks === refcountBlocks && table === refcountTableClusters) break;
    refcountBlocks = Math.max(refcountBlocks, blocks);
    refcountTableClusters = Math.max(refcountTableClusters, table);
  }
  const totalClusters = fixed + refcountBlocks + refcountTableClusters;
  if (totalClusters * clusterSize > MAX_HOST_OFFSET) {
    throw new InvalidArgumentError('qcow2 file would exceed 2^56 bytes', { reason: 'size' });
  }
  const l2Offset = (1 + dataClusters) * clusterSize;
  const l1Offset = l2Offset + l2Tables * clusterSize;
  const refcountBlockOffset = l1Offset + l1Clusters * clusterSize;
  const refcountTableOffset = refcountBlockOffset + refcountBlocks * clusterSize;
  return {
    l2Offset,
    l2Tables,
    l1Offset,
    l1Clusters,
    refcountBlockOffset,
    refcountBlocks,
    refcountTableOffset,
    refcountTableClusters,
    totalClusters,
  };
}

function setU64(view: DataView, at: number, value: number, hiFlags = 0): void {
  view.setUint32(at, (Math.floor(value / TWO32) | hiFlags) >>> 0);
  view.setUint32(at + 4, value % TWO32);
}

/** An overlay's backing file: its name (stored as given) and, optionally, its format name. */
export interface Qcow2WriterBacking {
  file: string;
  format?: string;
}

/**
 * Where the header cluster holds an overlay's backing file: the backing format extension
 * (type 0xE2792ACA, the name padded to 8 bytes) when `format` is given, the end-of-extensions
 * marker (8 zero bytes), then the file name (UTF-8, not terminated) at `nameOffset`. Refuses
 * (`backing`) an empty name, one above 1023 bytes, and what does not fit in the cluster.
 */
export function qcow2BackingLayout(
  geometry: Qcow2WriterGeometry,
  backing: Qcow2WriterBacking,
): { name: Uint8Array; format: Uint8Array | undefined; nameOffset: number } {
  const encoder = new TextEncoder();
  const name = encoder.encode(backing.file);
  const format = backing.format === undefined ? undefined : encoder.encode(backing.format);
  if (name.length === 0 || name.length > MAX_BACKING_NAME) {
    throw new InvalidArgumentError(
      `qcow2 backing file name of ${name.length} bytes outside 1..${MAX_BACKING_NAME}`,
      { reason: 'backing' },
    );
  }
  if (format !== undefined && format.length === 0) {
    throw new InvalidArgumentError('qcow2 backing file format is empty', { reason: 'backing' });
  }
  const extensions = format === undefined ? 0 : 8 + Math.ceil(format.length / 8) * 8;
  const nameOffset = HEADER_LENGTH + extensions + 8;
  if (nameOffset + name.length > geometry.clusterSize) {
    throw new InvalidArgumentError(
      `qcow2 backing file name and format (${nameOffset + name.length} header bytes) do not fit a ${geometry.clusterSize}-byte header cluster; use larger clusters`,
      { reason: 'backing' },
    );
  }
  return { name, format, nameOffset };
}

/**
 * The header cluster (cluster 0): a v3 header, then for an overlay the backing format extension
 * and the backing file name after the end marker (`qcow2BackingLayout`), zeros elsewhere.
 */
export function encodeQcow2Header(
  geometry: Qcow2WriterGeometry,
  layout: Qcow2MetadataLayout,
  backing?: Qcow2WriterBacking,
): Uint8Array {
  const out = new Uint8Array(geometry.clusterSize);
  const view = new DataView(out.buffer);
  view.setUint32(0x00, QCOW2_MAGIC);
  view.setUint32(0x04, 3); // version
  // 0x08 backing_file_offset, 0x10 backing_file_size: 0 without a backing file
  if (backing !== undefined) {
    const { name, format, nameOffset } = qcow2BackingLayout(geometry, backing);
    setU64(view, 0x08, nameOffset);
    view.setUint32(0x10, name.length);
    if (format !== undefined) {
      view.setUint32(HEADER_LENGTH, QCOW2_EXT_BACKING_FORMAT);
      view.setUint32(HEADER_LENGTH + 4, format.length);
      out.set(format, HEADER_LENGTH + 8);
    }
    // The end-of-extensions marker (type 0, length 0) stays zeros, just before the name.
    out.set(name, nameOffset);
  }
  view.setUint32(0x14, geometry.clusterBits);
  setU64(view, 0x18, geometry.virtualSize);
  // 0x20 crypt_method: 0
  view.setUint32(0x24, geometry.l1Size);
  setU64(view, 0x28, layout.l1Offset);
  setU64(view, 0x30, layout.refcountTableOffset);
  view.setUint32(0x38, layout.refcountTableClusters);
  // 0x3c nb_snapshots, 0x40 snapshots_offset: 0
  // 0x48 incompatible, 0x50 compatible, 0x58 autoclear features: 0
  view.setUint32(0x60, REFCOUNT_ORDER);
  view.setUint32(0x64, HEADER_LENGTH);
  return out;
}

/** In `encodeQcow2L2Table`'s `hostClusters`: a zero cluster (an overlay masking its backing). */
export const QCOW2_ZERO_CLUSTER = -1;

/**
 * One L2 table. `hostClusters[i]` is the host cluster index of guest cluster `first + i` of
 * this table, 0 for unallocated (reads as zeros, or from the backing file of an overlay), or
 * `QCOW2_ZERO_CLUSTER` for a zero cluster (bit 0 alone: zeros, masking the backing file).
 */
export function encodeQcow2L2Table(
  geometry: Qcow2WriterGeometry,
  hostClusters: ArrayLike<number>,
): Uint8Array {
  const out = new Uint8Array(geometry.clusterSize);
  const view = new DataView(out.buffer);
  const n = Math.min(hostClusters.length, geometry.l2Entries);
  for (let i = 0; i < n; i++) {
    const host = hostClusters[i]!;
    if (host === QCOW2_ZERO_CLUSTER) view.setUint32(i * 8 + 4, ZERO_FLAG_LO);
    else if (host !== 0) setU64(view, i * 8, host * geometry.clusterSize, COPIED_HI);
  }
  return out;
}

/** The L1 table, padded to whole clusters. `l2Offsets[i]` is 0 for an absent L2 table. */
export function encodeQcow2L1Table(
  geometry: Qcow2WriterGeometry,
  layout: Qcow2MetadataLayout,
  l2Offsets: ArrayLike<number>,
): Uint8Array {
  const out = new Uint8Array(layout.l1Clusters * geometry.clusterSize);
  const view = new DataView(out.buffer);
  const n = Math.min(l2Offsets.length, geometry.l1Size);
  for (let i = 0; i < n; i++) {
    const offset = l2Offsets[i]!;
    if (offset !== 0) setU64(view, i * 8, offset, COPIED_HI);
  }
  return out;
}

/**
 * Refcount block `index`: refcount 1 for every cluster below `totalClusters`, 0 after. With
 * compressed clusters, several can share a host data cluster: `dataRefcounts[i]` then gives the
 * refcount of host cluster `1 + i` (the data area), each at least 1.
 */
export function encodeQcow2RefcountBlock(
  geometry: Qcow2WriterGeometry,
  layout: Qcow2MetadataLayout,
  index: number,
  dataRefcounts?: ArrayLike<number>,
): Uint8Array {
  const out = new Uint8Array(geometry.clusterSize);
  const view = new DataView(out.buffer);
  const perBlock = geometry.clusterSize / 2;
  const first = index * perBlock;
  const count = Math.max(0, Math.min(perBlock, layout.totalClusters - first));
  for (let i = 0; i < count; i++) {
    const d = first + i - 1;
    const rc =
      dataRefcounts !== undefined && d >= 0 && d < dataRefcounts.length ? dataRefcounts[d]! : 1;
    if (!Number.isInteger(rc) || rc < 1 || rc > 0xffff) {
      throw new InvalidArgumentError(`refcount ${rc} of cluster ${first + i} outside 1..65535`, {
        reason: 'internal',
      });
    }
    view.setUint16(i * 2, rc);
  }
  return out;
}

export interface Qcow2CompressedEntry {
  /** The two 32-bit halves of the L2 entry (no COPIED flag: compressed clusters may share). */
  hi: number;
  lo: number;
  /**
   * Bytes the entry covers from `offset`: up to the end of its last 512-byte sector. Readers
   * read this much and `qemu-img check` counts a reference to every host cluster it touches.
   */
  storedLength: number;
}

/**
 * The L2 entry of a compressed cluster whose `length` compressed bytes start at host byte
 * `offset` (any byte, packed). Bit 62 marks it compressed; with x = 62 - (cluster_bits - 8),
 * bits 0..x-1 hold the offset and bits x..61 the number of 512-byte sectors after the first.
 */
export function encodeQcow2CompressedEntry(
  geometry: Qcow2WriterGeometry,
  offset: number,
  length: number,
): Qcow2CompressedEntry {
  const x = 62 - (geometry.clusterBits - 8);
  const additional = Math.floor((offset + length - 1) / 512) - Math.floor(offset / 512);
  if (
    !Number.isSafeInteger(offset) ||
    offset < geometry.clusterSize ||
    offset >= 2 ** x ||
    length < 1 ||
    length > geometry.clusterSize
  ) {
    throw new InvalidArgumentError(
      `compressed cluster of ${length} bytes at ${offset} cannot be mapped`,
      {
        reason: 'internal',
      },
    );
  }
  // x >= 49, so the sector count lies wholly in the high word: shift by x - 32 there.
  const hi = (0x40000000 | (additional << (x - 32)) | Math.floor(offset / TWO32)) >>> 0;
  return { hi, lo: offset % TWO32, storedLength: (additional + 1) * 512 - (offset % 512) };
}

/** The refcount table: the offsets of the refcount blocks, padded to whole clusters. */
export function encodeQcow2RefcountTable(
  geometry: Qcow2WriterGeometry,
  layout: Qcow2MetadataLayout,
): Uint8Array {
  const out = new Uint8Array(layout.refcountTableClusters * geometry.clusterSize);
  const view = new DataView(out.buffer);
  for (let i = 0; i < layout.refcountBlocks; i++) {
    setU64(view, i * 8, layout.refcountBlockOffset + i * geometry.clusterSize);
  }
  return out;
}

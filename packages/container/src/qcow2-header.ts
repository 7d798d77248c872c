import { FieldReader, UnsupportedError } from '@diskube/core';
import type { ContainerReason } from './reasons.js';

// Sources: QEMU docs/interop/qcow2.txt ("Header", "Feature name table", "Cluster mapping");
// QEMU block/qcow2.h (QCOW_MAX_L1_SIZE). All numbers in qcow2 are big-endian.

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** QEMU refuses L1 tables above 32 MiB (QCOW_MAX_L1_SIZE); so do we, before allocating. */
export const QCOW2_MAX_L1_BYTES = 32 * 1024 * 1024;

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** Virtual disk size in bytes. */
  size: number;
  l1Size: number;
  l1TableOffset: number;
  /** 'deflate' (0) or 'zstd' (1). */
  compressionType: 'deflate' | 'zstd';
  /** Backing file name, when the image has one (reading it is refused later). */
  backingFile: string | undefined;
  backingFileOffset: number;
  backingFileSize: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  /** The dirty bit (refcounts may be stale): harmless for reading, reported for information. */
  dirty: boolean;
  /** Incompatible bit 2: guest data lives in another file (refused by openQcow2). */
  externalDataFile: boolean;
  /** Where the header extensions start: header_length (v3) or 72 (v2). */
  headerLength: number;
  /** Incompatible bit 4: 128-bit L2 entries, 32 subclusters per cluster. */
  extendedL2: boolean;
}

const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_EXTERNAL_DATA = 1n << 2n;
const INCOMPAT_COMPRESSION_TYPE = 1n << 3n;
const INCOMPAT_EXTENDED_L2 = 1n << 4n;
const INCOMPAT_KNOWN = (1n << 5n) - 1n;

/**
 * Parse the qcow2 header (the first 72 bytes for v2, `header_length` bytes for v3). Pass at
 * least 112 bytes when available. Features we cannot read correctly are refused here.
 */
export function parseQcow2Header(bytes: Uint8Array): Qcow2Header {
  const f = new FieldReader<ContainerReason>(bytes, 'qcow2 header');
  const magic = f.u32be(0x00);
  if (magic !== QCOW2_MAGIC) throw f.corrupt('bad qcow2 magic', 0, 'bad-magic');
  const version = f.u32be(0x04);
  if (version !== 2 && version !== 3) {
    throw new UnsupportedError(`qcow2 version ${version} is not supported (only 2 and 3)`, {
      structure: 'qcow2 header',
      offset: 0x04,
      reason: 'version',
    });
  }
  const backing_file_offset = f.u64be(0x08, 'backing_file_offset');
  const backing_file_size = f.u32be(0x10);
  const cluster_bits = f.u32be(0x14);
  // The spec allows 9..21 (512 B to 2 MiB clusters).
  if (cluster_bits < 9 || cluster_bits > 21) {
    throw f.corrupt(`cluster_bits ${cluster_bits} outside 9..21`, 0x14, 'bad-geometry');
  }
  const size = f.u64be(0x18, 'size');
  const crypt_method = f.u32be(0x20);
  if (crypt_method !== 0) {
    throw new UnsupportedError(
      `encrypted qcow2 images are not supported (crypt_method ${crypt_method})`,
      {
        structure: 'qcow2 header',
        offset: 0x20,
        reason: 'encrypted',
      },
    );
  }
  const l1_size = f.u32be(0x24);
  const l1_table_offset = f.u64be(0x28, 'l1_table_offset');
  let compressionType: 'deflate' | 'zstd' = 'deflate';
  let dirty = false;
  let externalDataFile = false;
  let headerLength = 72;
  let extendedL2 = false;
  if (version === 3) {
    const incompatible_features = f.u64beBig(0x48);
    const header_length = f.u32be(0x64);
    if (header_length < 104 || header_length % 8 !== 0 || header_length > 2 ** cluster_bits) {
      throw f.corrupt(`bad header_length ${header_length}`, 0x64, 'bad-header-length');
    }
    const unknown = incompatible_features & ~INCOMPAT_KNOWN;
    if (unknown !== 0n) {
      throw new UnsupportedError(`unknown qcow2 incompatible features 0x${unknown.toString(16)}`, {
        structure: 'qcow2 header',
        offset: 0x48,
        reason: 'incompatible-feature',
      });
    }
    if (incompatible_features & INCOMPAT_CORRUPT) {
      throw f.corrupt(
        'the image is marked corrupt (run qemu-img check -r)',
        0x48,
        'marked-corrupt',
      );
    }
    // External data file (bit 2): refused by openQcow2, which first reads the file's name from
    // the header extensions for the message.
    externalDataFile = (incompatible_features & INCOMPAT_EXTERNAL_DATA) !== 0n;
    headerLength = header_length;
    // Extended L2 entries (bit 4, QEMU >= 5.2): 128-bit L2 entries with 32 subclusters each.
    extendedL2 = (incompatible_features & INCOMPAT_EXTENDED_L2) !== 0n;
    dirty = (incompatible_features & INCOMPAT_DIRTY) !== 0n;
    if (incompatible_features & INCOMPAT_COMPRESSION_TYPE) {
      if (header_length <= 104) {
        throw f.corrupt(
          'compression type bit set but no compression_type field',
          0x48,
          'bad-header-length',
        );
      }
      const compression_type = f.u8(0x68);
      if (compression_type === 1) compressionType = 'zstd';
      else if (compression_type !== 0) {
        throw new UnsupportedError(`unknown qcow2 compression type ${compression_type}`, {
          structure: 'qcow2 header',
          offset: 0x68,
          reason: 'compression-type',
        });
      }
    }
  }
  const clusterSize = 2 ** cluster_bits;
  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  // QEMU allows subclusters only from 16 KiB clusters (512-byte subclusters at least).
  if (extendedL2 && cluster_bits < 14) {
    throw f.corrupt(`extended L2 entries with ${clusterSize}-byte clusters`, 0x14, 'bad-geometry');
  }
  const needL1 = Math.ceil(size / (clusterSize * l2Entries));
  if (l1_size < needL1) {
    throw f.corrupt(
      `l1_size ${l1_size} cannot map ${size} bytes (needs ${needL1})`,
      0x24,
      'table-too-small',
    );
  }
  if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
    throw f.corrupt(`l1_size ${l1_size} exceeds the 32 MiB limit`, 0x24, 'too-large');
  }
  // Every qcow2 has a refcount table (QEMU refuses to open one without: "Image does not contain
  // a reference count table"). A zeroed one is a damaged header whose other fields (size, L1)
  // cannot be trusted either; we do not read the table, only check it is where it can be.
  const refcount_table_offset = f.u64be(0x30, 'refcount_table_offset');
  const refcount_table_clusters = f.u32be(0x38);
  if (refcount_table_clusters === 0) {
    throw f.corrupt('the header names no refcount table', 0x38, 'missing');
  }
  if (refcount_table_offset % clusterSize !== 0) {
    throw f.corrupt(
      `refcount_table_offset ${refcount_table_offset} is not cluster-aligned`,
      0x30,
      'unaligned',
    );
  }
  if (refcount_table_offset < clusterSize) {
    throw f.corrupt('the refcount table overlaps the header', 0x30, 'overlap');
  }
  if (l1_size > 0 && l1_table_offset % clusterSize !== 0) {
    throw f.corrupt(`l1_table_offset ${l1_table_offset} is not cluster-aligned`, 0x28, 'unaligned');
  }
  if (backing_file_offset !== 0 && (backing_file_size === 0 || backing_file_size > 1023)) {
    throw f.corrupt(
      `backing_file_size ${backing_file_size} outside 1..1023`,
      0x10,
      'bad-backing-file',
    );
  }
  return {
    version,
    clusterBits: cluster_bits,
    clusterSize,
    size,
    l1Size: l1_size,
    l1TableOffset: l1_table_offset,
    compressionType,
    backingFile: undefined,
    backingFileOffset: backing_file_offset,
    backingFileSize: backing_file_offset === 0 ? 0 : backing_file_size,
    refcountTableOffset: refcount_table_offset,
    refcountTableClusters: refcount_table_clusters,
    dirty,
    externalDataFile,
    headerLength,
    extendedL2,
  };
}

/** Header extension type of the external data file's name (ASCII "DATA"). */
export const QCOW2_EXT_DATA_FILE = 0x44415441;
/** Header extension type of the backing file's format name (e.g. "qcow2", "raw"). */
export const QCOW2_EXT_BACKING_FORMAT = 0xe2792aca;

/**
 * Walk the header extensions that follow the header (from `start`: header_length in v3, 72 in
 * v2) up to the end of `bytes` (the first cluster, or less of a short file). Each is {u32 type,
 * u32 length, data padded to 8 bytes}; type 0 ends the list. Only the external data file name
 * and the backing file format are kept. Sources: QEMU docs/interop/qcow2.txt "Header extensions".
 */
export function parseQcow2Extensions(
  bytes: Uint8Array,
  start: number,
): { dataFile: string | undefined; backingFormat: string | undefined } {
  const f = new FieldReader<ContainerReason>(bytes, 'qcow2 header extension');
  let dataFile: string | undefined;
  let backingFormat: string | undefined;
  // Each extension takes at least 8 bytes, so the walk ends within bytes.length / 8 steps.
  for (let at = start; at + 8 <= bytes.length; ) {
    const type = f.u32be(at);
    const length = f.u32be(at + 4);
    if (type === 0) break;
    if (at + 8 + length > bytes.length) {
      throw f.corrupt(
        `header extension 0x${type.toString(16)} of ${length} bytes runs past the header cluster`,
        at + 4,
        'bad-header-extension',
      );
    }
    if (type === QCOW2_EXT_DATA_FILE) dataFile = new TextDecoder().decode(f.slice(at + 8, length));
    if (type === QCOW2_EXT_BACKING_FORMAT) {
      backingFormat = new TextDecoder().decode(f.slice(at + 8, length));
    }
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return { dataFile, backingFormat };
}

import type { Bitmap } from '@diskube/bitmap';
import { CorruptError } from '@diskube/core';
import type { FatType } from './boot-sector.js';

// Sources: fatgen103 1.03, "FAT Data Structure" (entry values, FAT12 packing, the FAT32 high
// nibble, FAT[1]'s ClnShutBitMask/HrdErrBitMask); dosfstools src/fat.c (get_fat).

/** Entry values from here up are marks (reserved, bad cluster, end of chain), not links. */
export const MARK_FROM: Record<FatType, number> = { 12: 0xff0, 16: 0xfff0, 32: 0x0ffffff0 };

/** Byte offset of entry `n` from the start of the FAT. */
export function entryOffset(type: FatType, n: number): number {
  return type === 12 ? Math.floor((n * 3) / 2) : n * (type / 8);
}

/**
 * Entry `n` of a FAT whose bytes from entry `first` on are in `bytes` (`first` even on FAT12,
 * where two entries share three bytes). FAT32 entries are 28 bits: the high nibble is reserved.
 * The caller keeps `n` inside `bytes`.
 */
export function fatEntry(bytes: Uint8Array, type: FatType, first: number, n: number): number {
  const at = entryOffset(type, n) - entryOffset(type, first);
  if (type === 12) {
    const pair = bytes[at]! | (bytes[at + 1]! << 8);
    return n % 2 === 0 ? pair & 0xfff : pair >>> 4;
  }
  if (type === 16) return bytes[at]! | (bytes[at + 1]! << 8);
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) &
    0x0fffffff
  );
}

/** FAT[1]'s volume state bits (FAT16 bits 15/14, FAT32 bits 27/26; FAT12 has none). */
export function volumeState(
  type: FatType,
  entry1: number,
): { clean: boolean; hardErrors: boolean } {
  if (type === 12) return { clean: true, hardErrors: false };
  const shift = type === 16 ? 15 : 27;
  return {
    clean: ((entry1 >>> shift) & 1) === 1,
    hardErrors: ((entry1 >>> (shift - 1)) & 1) === 0,
  };
}

/**
 * Marks in `clusters` (bit `c − 2` for cluster `c`) every cluster among entries
 * [`from`, `to`) whose entry is non-zero: allocated, bad or end of chain. `bytes` hold the FAT
 * from entry `first` on and reach entry `to`. A link to cluster 1, or past the last cluster
 * (`clusterCount + 1`), is a CorruptError at its byte in the source (`fatOffset` is the FAT's).
 */
export function markAllocated(
  bytes: Uint8Array,
  type: FatType,
  first: number,
  from: number,
  to: number,
  clusterCount: number,
  clusters: Bitmap,
  fatOffset: number,
): void {
  const last = clusterCount + 1;
  const marks = MARK_FROM[type];
  const entry = entryReader(bytes, type, first);
  let runStart = -1;
  for (let n = Math.max(from, 2); n < to; n++) {
    const value = entry(n);
    if (value === 0) {
      if (runStart >= 0) clusters.setRange(runStart - 2, n - runStart);
      runStart = -1;
      continue;
    }
    if (value < marks && (value < 2 || value > last)) {
      throw new CorruptError(
        `FAT entry of cluster ${n} links to cluster ${value}, outside 2…${last}`,
        { structure: 'FAT', offset: fatOffset + entryOffset(type, n), reason: 'bad-cluster-link' },
      );
    }
    if (runStart < 0) runStart = n;
  }
  if (runStart >= 0) clusters.setRange(runStart - 2, to - runStart);
}

/** True on little-endian hosts (all current browsers and Node platforms). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Entry `n` of the chunk, through a 16- or 32-bit view of its bytes where the host is
 * little-endian and the bytes are aligned (a FAT scan decodes millions of entries), else
 * byte by byte.
 */
export function entryReader(
  bytes: Uint8Array,
  type: FatType,
  first: number,
): (n: number) => number {
  const width = type / 8;
  if (type !== 12 && LITTLE_ENDIAN && bytes.byteOffset % width === 0) {
    const count = Math.floor(bytes.length / width);
    if (type === 16) {
      const words = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      return (n) => words[n - first]!;
    }
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, count);
    return (n) => words[n - first]! & 0x0fffffff;
  }
  return (n) => fatEntry(bytes, type, first, n);
}

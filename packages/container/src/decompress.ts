import { CorruptError } from '@diskube/core';
import { inflateSync } from 'fflate';
import { decompress as zstdDecompress } from 'fzstd';

// Decompression of qcow2 clusters and VMDK grains, in pure JavaScript so the package runs in a
// browser too: fflate (raw deflate) and fzstd (Zstandard), both synchronous. We chose them over
// the web `DecompressionStream('deflate-raw')` global because that one is asynchronous and
// stream-based (one stream per 64 KiB cluster), has no zstd, and gives no control over the
// output size; fflate writes into a buffer we size to exactly one cluster.

/**
 * Inflate raw deflate data (RFC 1951) into exactly `size` bytes. Bytes after the final block are
 * ignored (qcow2 rounds compressed clusters up to whole sectors).
 */
export function inflateRaw(
  data: Uint8Array,
  size: number,
  structure: string,
  offset: number,
): Uint8Array {
  const out = new Uint8Array(size);
  let produced: Uint8Array;
  try {
    produced = inflateSync(data, { out });
  } catch (cause) {
    throw new CorruptError(`${structure} does not inflate: ${(cause as Error).message}`, {
      structure,
      offset,
      reason: 'bad-compressed-data',
      cause,
    });
  }
  if (produced.length !== size) {
    throw new CorruptError(`${structure} inflates to ${produced.length} bytes, not ${size}`, {
      structure,
      offset,
      reason: 'bad-compressed-data',
    });
  }
  return out;
}

/** Inflate a zlib stream (RFC 1950, as VMDK stores grains); the Adler-32 trailer is not checked. */
export function inflateZlib(
  data: Uint8Array,
  size: number,
  structure: string,
  offset: number,
): Uint8Array {
  const cmf = data[0] ?? 0;
  const flg = data[1] ?? 0;
  if ((cmf & 0x0f) !== 8 || ((cmf << 8) | flg) % 31 !== 0 || flg & 0x20) {
    throw new CorruptError(`${structure} is not a zlib stream`, {
      structure,
      offset,
      reason: 'bad-compressed-data',
    });
  }
  return inflateRaw(data.subarray(2), size, structure, offset);
}

/**
 * Length of the Zstandard frame (or skippable frame) at the start of `data`, found by walking its
 * block headers (RFC 8878 §3.1). qcow2 stores one frame per cluster followed by sector padding,
 * and a decoder fed the padding would take it for a next frame.
 */
function zstdFrameLength(data: Uint8Array, structure: string, offset: number): number {
  const bad = (what: string) =>
    new CorruptError(`${structure}: ${what}`, { structure, offset, reason: 'bad-compressed-data' });
  if (data.length < 8) throw bad('zstd frame truncated');
  const magic = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
  if ((magic & 0xfffffff0) === 0x184d2a50) {
    const len = (data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! << 24)) >>> 0;
    return 8 + len;
  }
  if (magic !== 0xfd2fb528) throw bad('no zstd frame magic');
  const fhd = data[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictIdFlag = fhd & 3;
  const fcsSize = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (!singleSegment) {
    // The decoder allocates a window of this size: refuse claims far beyond one cluster.
    const windowLog = 10 + (data[5]! >> 3);
    if (windowLog > 25) throw bad(`zstd window of 2^${windowLog} bytes`);
  }
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictIdFlag]! + fcsSize;
  if (singleSegment && fcsSize >= 4) {
    const at = 5 + [0, 1, 2, 4][dictIdFlag]!;
    const fcs =
      fcsSize === 4
        ? (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0
        : 2 ** 32;
    if (pos > data.length || fcs > 2 ** 25) throw bad('zstd frame content size too large');
  }
  // Each block header is 3 bytes; bound the walk by the input length.
  for (;;) {
    if (pos + 3 > data.length) throw bad('zstd block header truncated');
    const h = data[pos]! | (data[pos + 1]! << 8) | (data[pos + 2]! << 16);
    const last = h & 1;
    const type = (h >> 1) & 3;
    const blockSize = h >>> 3;
    if (type === 3) throw bad('reserved zstd block type');
    pos += 3 + (type === 1 ? 1 : blockSize);
    if (pos > data.length) throw bad('zstd block truncated');
    if (last) break;
  }
  return pos + (checksum ? 4 : 0);
}

/** Decompress Zstandard frames into exactly `size` bytes, ignoring padding after them. */
export function unzstd(
  data: Uint8Array,
  size: number,
  structure: string,
  offset: number,
): Uint8Array {
  const out = new Uint8Array(size);
  let produced = 0;
  let pos = 0;
  // Each frame yields at least one byte or is skipped; the loop ends when the cluster is full.
  while (produced < size) {
    const length = zstdFrameLength(data.subarray(pos), structure, offset + pos);
    if (pos + length > data.length) {
      throw new CorruptError(`${structure}: zstd frame truncated`, {
        structure,
        offset,
        reason: 'bad-compressed-data',
      });
    }
    const frame = data.subarray(pos, pos + length);
    pos += length;
    let part: Uint8Array;
    try {
      part = zstdDecompress(frame);
    } catch (cause) {
      throw new CorruptError(`${structure} does not decompress: ${(cause as Error).message}`, {
        structure,
        offset,
        reason: 'bad-compressed-data',
        cause,
      });
    }
    if (part.length > size - produced) {
      throw new CorruptError(`${structure} decompresses to more than ${size} bytes`, {
        structure,
        offset,
        reason: 'bad-compressed-data',
      });
    }
    out.set(part, produced);
    produced += part.length;
    if (part.length === 0 && pos >= data.length) break;
  }
  if (produced !== size) {
    throw new CorruptError(`${structure} decompresses to ${produced} bytes, not ${size}`, {
      structure,
      offset,
      reason: 'bad-compressed-data',
    });
  }
  return out;
}

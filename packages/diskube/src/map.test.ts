import { Bitmap } from '@diskube/bitmap';
import type { DiskMap } from '@diskube/partition';
import { describe, expect, it } from 'vitest';
import { usedByteRanges, usedBytes } from './map.js';

function map(used: Bitmap, blockSize: number, tail: { length: number; used: boolean }): DiskMap {
  const offset = used.length * blockSize;
  return {
    size: offset + tail.length,
    blockSize,
    blockCount: used.length,
    used,
    tail: { offset, length: tail.length, used: tail.used, reason: 'test' },
    table: null,
    parts: [],
    warnings: [],
  };
}

describe('usedByteRanges', () => {
  it('turns block runs into byte ranges and joins a kept tail to the last run', () => {
    const used = Bitmap.fromRanges(8, [
      [0, 2],
      [7, 1],
    ]);
    expect(usedByteRanges(map(used, 4096, { length: 512, used: true }))).toEqual([
      [0, 8192],
      [28672, 4096 + 512],
    ]);
    expect(usedBytes(map(used, 4096, { length: 512, used: true }))).toBe(3 * 4096 + 512);
  });

  it('adds a kept tail as its own range after a free block, and drops an unused tail', () => {
    const used = Bitmap.fromRanges(4, [[0, 1]]);
    expect(usedByteRanges(map(used, 1024, { length: 100, used: true }))).toEqual([
      [0, 1024],
      [4096, 100],
    ]);
    expect(usedByteRanges(map(used, 1024, { length: 100, used: false }))).toEqual([[0, 1024]]);
  });
});

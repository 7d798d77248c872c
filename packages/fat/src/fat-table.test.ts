import { Bitmap } from '@diskube/bitmap';
import { CorruptError } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { fatEntry, markAllocated, volumeState } from './fat-table.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('FAT entries', () => {
  it('unpacks FAT12 pairs of entries from three bytes', () => {
    // Entries 0x123 and 0x456 are stored as 23 61 45.
    const fat = bytes(0x23, 0x61, 0x45);
    expect(fatEntry(fat, 12, 0, 0)).toBe(0x123);
    expect(fatEntry(fat, 12, 0, 1)).toBe(0x456);
  });

  it('reads FAT16 entries and FAT32 entries without their reserved high nibble', () => {
    expect(fatEntry(bytes(0, 0, 0x34, 0x12), 16, 0, 1)).toBe(0x1234);
    expect(fatEntry(bytes(0x78, 0x56, 0x34, 0xf2), 32, 0, 0)).toBe(0x02345678);
    // Relative to the chunk's first entry.
    expect(fatEntry(bytes(0x78, 0x56, 0x34, 0x12), 32, 1000, 1000)).toBe(0x02345678);
  });

  it('reads the clean-shutdown and hard-error bits of FAT[1]', () => {
    expect(volumeState(16, 0xffff)).toEqual({ clean: true, hardErrors: false });
    expect(volumeState(16, 0x7fff)).toEqual({ clean: false, hardErrors: false });
    expect(volumeState(16, 0xbfff)).toEqual({ clean: true, hardErrors: true });
    expect(volumeState(32, 0x07ffffff)).toEqual({ clean: false, hardErrors: false });
    expect(volumeState(32, 0x0bffffff)).toEqual({ clean: true, hardErrors: true });
    expect(volumeState(12, 0)).toEqual({ clean: true, hardErrors: false });
  });
});

describe('markAllocated', () => {
  // FAT16: media, FAT[1], then clusters 2…7: 3 → EOC, free, bad, 7, free, EOC.
  const fat16 = (...entries: number[]) => {
    const b = new Uint8Array(entries.length * 2);
    entries.forEach((e, i) => {
      b[2 * i] = e & 0xff;
      b[2 * i + 1] = e >> 8;
    });
    return b;
  };

  it('marks every non-zero entry: links, end of chain and bad clusters', () => {
    const clusters = new Bitmap(6);
    markAllocated(fat16(0xfff8, 0xffff, 3, 0xffff, 0, 0xfff7, 7, 0), 16, 0, 0, 8, 6, clusters, 0);
    expect(clusters.toRanges()).toEqual([
      [0, 2],
      [3, 2],
    ]);
  });

  it('reads the same through aligned word views and, unaligned, byte by byte', () => {
    const fat = fat16(0xfff8, 0xffff, 3, 0xffff, 0, 0xfff7, 7, 0);
    const shifted = new Uint8Array(fat.length + 1);
    shifted.set(fat, 1);
    const a = new Bitmap(6);
    const b = new Bitmap(6);
    markAllocated(fat, 16, 0, 0, 8, 6, a, 0);
    markAllocated(shifted.subarray(1), 16, 0, 0, 8, 6, b, 0);
    expect(b.toRanges()).toEqual(a.toRanges());
  });

  it.each([
    ['cluster 1', 1],
    ['past the last cluster', 8],
    ['a reserved value below the marks', 0xffef],
  ])('rejects a link to %s', (_what, value) => {
    const fat = fat16(0xfff8, 0xffff, 3, value, 0, 0, 0, 0);
    try {
      markAllocated(fat, 16, 0, 0, 8, 6, new Bitmap(6), 4096);
      throw new Error('expected an error');
    } catch (e) {
      expect(CorruptError.isInstance(e)).toBe(true);
      expect(e).toMatchObject({ reason: 'bad-cluster-link', offset: 4096 + 6 });
    }
  });
});

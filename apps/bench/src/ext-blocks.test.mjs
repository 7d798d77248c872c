import { describe, expect, it } from 'vitest';
import { complementRanges, parseDumpe2fs } from './ext-blocks.mjs';

const DUMPE2FS = `Filesystem volume name:   bench
Block count:              65536
Block size:               4096

Group 0: (Blocks 0-32767) csum 0x1234 [ITABLE_ZEROED]
  Primary superblock at 0, Group descriptors at 1-1
  Free blocks: 4140-12331, 20000
  Free inodes: 12-8192
Group 1: (Blocks 32768-65535) csum 0x5678 [INODE_UNINIT]
  Free blocks: 
  Free inodes: 8193-16384
Group 2: (Blocks 65536-65535)
  Free blocks: 41299-65535
`;

describe('parseDumpe2fs', () => {
  it('reads block size, count and every free range, sorted', () => {
    const r = parseDumpe2fs(DUMPE2FS);
    expect(r.blockSize).toBe(4096);
    expect(r.blockCount).toBe(65536);
    expect(r.free).toEqual([
      [4140, 8192],
      [20000, 1],
      [41299, 24237],
    ]);
  });

  it('rejects a free range past the end', () => {
    expect(() => parseDumpe2fs(DUMPE2FS.replace('41299-65535', '41299-65536'))).toThrow(
      /bad free range/,
    );
  });

  it('rejects output without a block count', () => {
    expect(() => parseDumpe2fs('Block size: 4096\n')).toThrow(/Block count/);
  });
});

describe('complementRanges', () => {
  it('returns the gaps, including the head and the tail', () => {
    expect(
      complementRanges(
        [
          [2, 3],
          [7, 1],
        ],
        10,
      ),
    ).toEqual([
      [0, 2],
      [5, 2],
      [8, 2],
    ]);
  });

  it('returns nothing when everything is covered, everything when nothing is', () => {
    expect(complementRanges([[0, 10]], 10)).toEqual([]);
    expect(complementRanges([], 4)).toEqual([[0, 4]]);
  });

  it('rejects overlapping ranges', () => {
    expect(() =>
      complementRanges(
        [
          [0, 5],
          [3, 2],
        ],
        10,
      ),
    ).toThrow(/overlapping/);
  });
});

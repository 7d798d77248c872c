import { Bitmap } from '@diskube/bitmap';
import { describe, expect, it } from 'vitest';
import type { UsedBlocks } from './driver.js';
import { memorySource } from './source.js';
import { bitmapDifferences, bitmapOfRanges, countingSource, oracleProblems } from './test.js';

const map = (length: number, ...runs: Array<[number, number]>) => {
  const b = new Bitmap(length);
  for (const [start, count] of runs) b.setRange(start, count);
  return b;
};

const result = (used: Bitmap): UsedBlocks => ({
  filesystem: 'toy',
  blockSize: 512,
  blockCount: used.length,
  used,
  tail: { offset: used.length * 512, length: 0, used: false, reason: 'none' },
  warnings: [],
  facts: {},
});

describe('conformance helpers', () => {
  it('bitmapOfRanges: partly covered blocks count, ranges past the end are clipped', () => {
    const b = bitmapOfRanges(
      [
        [0, 512],
        [600, 100], // inside block 1
        [4096, 1 << 20], // from block 8 past the end
      ],
      512,
      10,
    );
    expect(b.toRanges()).toEqual([
      [0, 2],
      [8, 2],
    ]);
  });

  it('bitmapDifferences: missing and extra runs each way', () => {
    expect(bitmapDifferences(map(16, [0, 4]), map(16, [2, 4]))).toEqual({
      missing: [[4, 2]],
      extra: [[0, 2]],
    });
    expect(bitmapDifferences(map(8), map(9))).toEqual({ missing: [[-1, 9]], extra: [[-1, 8]] });
  });

  it('oracleProblems: equal is fine, missing blocks are never fine, extras only when explained', () => {
    const oracle = map(32, [0, 8]);
    expect(oracleProblems(result(map(32, [0, 8])), oracle)).toEqual([]);
    expect(oracleProblems(result(map(32, [0, 7])), oracle)).toEqual([
      'missing (under-reported) runs [[7,1]]',
    ]);
    const extra = result(map(32, [0, 8], [20, 2]));
    expect(oracleProblems(extra, oracle)).toEqual([
      '2 extra blocks nobody explained, runs [[20,2]]',
    ]);
    expect(oracleProblems(extra, oracle, [{ blocks: map(32, [20, 1]), why: 'half' }])).toEqual([
      '1 extra blocks nobody explained, runs [[21,1]]',
    ]);
    expect(oracleProblems(extra, oracle, [{ blocks: map(32, [20, 2]), why: 'all' }])).toEqual([]);
    expect(oracleProblems(extra, map(31))).toEqual(['oracle has 31 blocks, the result 32']);
  });

  it('countingSource counts reads and bytes', async () => {
    const counted = countingSource(memorySource(new Uint8Array(4096)));
    await counted.source.read(0, new Uint8Array(512));
    await counted.source.read(1024, new Uint8Array(100));
    expect([counted.reads(), counted.bytes()]).toEqual([2, 612]);
  });
});

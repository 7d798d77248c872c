import { Bitmap } from '@diskube/bitmap';
import { expect, test } from 'vitest';
import { prng, randomBitmap } from './test-support.js';
import { readBatches } from './writer.js';

test('read batches cover every set bit, in order, within size and gap limits', () => {
  const rand = prng(31);
  const cases = [new Bitmap(0), new Bitmap(100).setAll(), new Bitmap(5000).setRange(10, 4000)];
  for (let k = 0; k < 60; k++)
    cases.push(randomBitmap(rand, 1 + Math.floor(rand() * 3000), rand() * rand()));
  for (const bits of cases) {
    for (const [maxBlocks, maxGap] of [
      [1, 0],
      [7, 0],
      [16, 3],
      [1000, 64],
    ] as const) {
      const covered = new Bitmap(bits.length);
      let previousEnd = -1;
      const problems: string[] = [];
      for (const [first, count] of readBatches(bits, maxBlocks, maxGap)) {
        if (count < 1 || count > maxBlocks) problems.push(`size ${count}`);
        if (first < previousEnd) problems.push(`overlap at ${first}`);
        if (!bits.get(first) || !bits.get(first + count - 1))
          problems.push(`clear edge at ${first}`);
        // No run of clear bits inside a batch is longer than maxGap.
        let gap = 0;
        for (let i = first; i < first + count; i++) {
          gap = bits.get(i) ? 0 : gap + 1;
          if (gap > maxGap) problems.push(`gap at ${i}`);
        }
        covered.setRange(first, count);
        previousEnd = first + count;
      }
      expect(problems).toEqual([]);
      expect(bits.clone().andNot(covered).isEmpty()).toBe(true);
    }
  }

  // Small gaps are joined: two runs 3 apart make one read with maxGap 3, two with maxGap 2.
  const two = new Bitmap(20).setRange(0, 5).setRange(8, 5);
  expect([...readBatches(two, 100, 3)]).toEqual([[0, 13]]);
  expect([...readBatches(two, 100, 2)]).toEqual([
    [0, 5],
    [8, 5],
  ]);
  expect([...readBatches(two, 4, 3)]).toEqual([
    [0, 4],
    [4, 1],
    [8, 4],
    [12, 1],
  ]);
});

import { expect, test } from 'vitest';
import { formatChangedRanges, parseChangedRanges, rangesToBlocks } from './changed-ranges.js';
import type { FormatReason } from './reasons.js';

test('parses the documented text format', () => {
  const text = '# dirty blocks of disk0\n0 4096\n\n  0x2000\t512  \r\n1048576 1\n';
  const ranges = parseChangedRanges(text);
  expect(ranges).toEqual([
    { offset: 0, length: 4096 },
    { offset: 0x2000, length: 512 },
    { offset: 1048576, length: 1 },
  ]);
  expect(parseChangedRanges(formatChangedRanges(ranges))).toEqual(ranges);
});

test('rejects malformed lines', () => {
  for (const text of ['1', '1 2 3', '-1 5', '1.5 2', 'a b', '99999999999999999999 1']) {
    expect(() => parseChangedRanges(text)).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        reason: 'bad-changed-ranges' satisfies FormatReason,
      }),
    );
  }
});

test('maps byte ranges to every block they touch', () => {
  const b = rangesToBlocks(
    [
      { offset: 1000, length: 100 },
      { offset: 4095, length: 2 },
      { offset: 0, length: 0 },
      { offset: 10_000, length: 1_000_000 },
    ],
    1024,
    12,
  );
  expect(b.toRanges()).toEqual([
    [0, 2],
    [3, 2],
    [9, 3],
  ]);
});

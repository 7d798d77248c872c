import { Bitmap } from '@diskube/bitmap';
import { expect, test } from 'vitest';
import { decodeBitmap, encodeBitmap } from './bitmap-codec.js';
import type { FormatReason } from './reasons.js';
import { ENCODING_RAW, ENCODING_RLE } from './section.js';
import { prng, randomBitmap } from './test-support.js';

test('round trips random and structured bitmaps, choosing the shorter encoding', () => {
  const rand = prng(7);
  const cases: Bitmap[] = [
    new Bitmap(0),
    new Bitmap(1),
    new Bitmap(1).setAll(),
    new Bitmap(1000).setAll(),
    new Bitmap(100_000).setRange(10, 50_000),
  ];
  for (let k = 0; k < 40; k++)
    cases.push(randomBitmap(rand, 1 + Math.floor(rand() * 5000), rand()));
  for (const b of cases) {
    const { encoding, payload } = encodeBitmap(b);
    expect(payload.length).toBeLessThanOrEqual(Math.ceil(b.length / 8));
    expect(decodeBitmap(payload, encoding, b.length, 'test', 0).equals(b)).toBe(true);
  }
  expect(encodeBitmap(new Bitmap(100_000).setRange(10, 50_000)).encoding).toBe(ENCODING_RLE);
  expect(encodeBitmap(randomBitmap(rand, 10_000, 0.5)).encoding).toBe(ENCODING_RAW);
});

test('run-length: bytes as documented in SPEC.md', () => {
  // 300 bits, set [2, 5) and [200, 300): runs clear 2, set 3, clear 195, set 100.
  const b = new Bitmap(300).setRange(2, 3).setRange(200, 100);
  const { encoding, payload } = encodeBitmap(b);
  expect(encoding).toBe(ENCODING_RLE);
  expect([...payload]).toEqual([2, 3, 0xc3, 0x01, 100]);
});

test('rejects malformed encodings', () => {
  const bad = (payload: number[], encoding: number, length: number) => () =>
    decodeBitmap(Uint8Array.from(payload), encoding, length, 'test', 0);
  expect(bad([2, 3], ENCODING_RLE, 10)).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-run' satisfies FormatReason }),
  );
  expect(bad([2, 9], ENCODING_RLE, 10)).toThrow(
    expect.objectContaining({ reason: 'bad-run' satisfies FormatReason }),
  );
  expect(bad([2, 0, 8], ENCODING_RLE, 10)).toThrow(
    expect.objectContaining({ reason: 'bad-run' satisfies FormatReason }),
  );
  expect(bad([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1], ENCODING_RLE, 10)).toThrow(
    expect.objectContaining({ reason: 'bad-varint' satisfies FormatReason }),
  );
  expect(bad([0x80], ENCODING_RLE, 10)).toThrow(
    expect.objectContaining({ reason: 'truncated' satisfies FormatReason }),
  );
  expect(bad([0xff, 0xff], ENCODING_RAW, 10)).toThrow(
    expect.objectContaining({ reason: 'padding' satisfies FormatReason }),
  );
  expect(bad([0xff], ENCODING_RAW, 10)).toThrow(
    expect.objectContaining({ reason: 'length-mismatch' satisfies FormatReason }),
  );
  expect(bad([], 7, 0)).toThrow(
    expect.objectContaining({ reason: 'bad-encoding' satisfies FormatReason }),
  );
});

import { describe, expect, it } from 'vitest';
import { Bitmap } from './bitmap.js';

// One bitmap past 2^32 bits (512 MiB), to catch any 32-bit truncation of a bit index (`>>>`,
// `| 0`, Int32 loop counters). A 16 TiB disk in 4 KiB blocks is exactly 2^32 blocks.
describe('a bitmap of more than 2^32 bits', () => {
  it('sets, reads, counts and iterates bits above 2^32', { timeout: 120_000 }, () => {
    const G = 2 ** 32;
    const length = G + 77;
    const bitmap = new Bitmap(length);
    expect(bitmap.length).toBe(length);

    bitmap.set(0);
    bitmap.set(G - 1);
    bitmap.set(G + 5);
    bitmap.set(length - 1);
    bitmap.setRange(G - 10, 20); // crosses 2^32: [G-10, G+10)
    bitmap.setRange(G + 40, 8);
    // An on-disk bitmap adopted at a byte offset above 2^32: bits G+48 .. G+63 from 0xff 0x0f.
    bitmap.setBytes(G + 48, new Uint8Array([0xff, 0x0f]), 12);

    expect(bitmap.get(G + 5)).toBe(true);
    expect(bitmap.get(G + 10)).toBe(false);
    expect(bitmap.get(G + 59)).toBe(true);
    expect(bitmap.get(G + 60)).toBe(false);
    expect(bitmap.get(length - 1)).toBe(true);
    // The 32-bit aliases of the bits above 2^32 stay clear.
    expect(bitmap.get(5)).toBe(false);
    expect(bitmap.get(40)).toBe(false);
    expect(bitmap.get(76)).toBe(false);
    bitmap.clear(0);
    expect(bitmap.get(G)).toBe(true);

    const expectedRuns: [number, number][] = [
      [G - 10, 20],
      [G + 40, 20],
      [length - 1, 1],
    ];
    expect(bitmap.toRanges()).toEqual(expectedRuns);
    expect([...bitmap.runs(G, length)]).toEqual([
      [G, 10],
      [G + 40, 20],
      [length - 1, 1],
    ]);
    expect(bitmap.count()).toBe(41);
    expect(bitmap.countRange(G, 77)).toBe(31);
    expect(bitmap.nextSet(G + 10)).toBe(G + 40);
    expect(bitmap.nextClear(G - 10)).toBe(G + 10);
    expect(bitmap.nextSet(1)).toBe(G - 10);
    expect(bitmap.coarsen(2 ** 20).toRanges()).toEqual([[2 ** 12 - 1, 2]]);

    bitmap.not();
    expect(bitmap.count()).toBe(length - 41);
    expect(bitmap.nextClear(0)).toBe(G - 10);
    expect(bitmap.get(length - 1)).toBe(false);
  });
});

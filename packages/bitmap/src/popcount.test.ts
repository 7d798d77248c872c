import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { popcount32, popcountWords } from './popcount.js';

function naive(word: number): number {
  let n = 0;
  for (let b = 0; b < 32; b++) if (Math.floor(word / 2 ** b) % 2 === 1) n++;
  return n;
}

describe('popcount', () => {
  it('counts the bits of edge words', () => {
    for (const w of [
      0, 1, 0x80000000, 0xffffffff, 0x55555555, 0xaaaaaaaa, 0x7fffffff, 0x0f0f0f0f,
    ]) {
      expect(popcount32(w)).toBe(naive(w));
    }
  });

  it('popcount32 matches a bit-by-bit count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (w) => {
        expect(popcount32(w)).toBe(naive(w));
        // Words read from an Int32Array arrive negative; the count must not change.
        expect(popcount32(w | 0)).toBe(naive(w));
      }),
      { numRuns: 2000 },
    );
  });

  it('popcountWords sums a sub-range of words', () => {
    fc.assert(
      fc.property(
        fc
          .uint32Array({ maxLength: 40 })
          .chain((words) =>
            fc.tuple(
              fc.constant(words),
              fc.nat({ max: words.length }),
              fc.nat({ max: words.length }),
            ),
          ),
        ([words, a, b]) => {
          const [from, to] = [Math.min(a, b), Math.max(a, b)];
          let expected = 0;
          for (let i = from; i < to; i++) expected += naive(words[i]!);
          expect(popcountWords(words, from, to)).toBe(expected);
        },
      ),
    );
  });
});

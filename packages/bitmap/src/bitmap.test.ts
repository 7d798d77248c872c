import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bitmap } from './bitmap.js';
import {
  bitsAndRangeArb,
  bitsArb,
  fromModel,
  lengthArb,
  type Model,
  modelArb,
  modelCount,
  modelRuns,
  modelToBytes,
  pairArb,
  tailIsClear,
  toModel,
} from './model.test-support.js';

/** Checks a Bitmap against its model: bits, length, and the clear-tail invariant. */
function expectMatches(bitmap: Bitmap, model: Model): void {
  expect(bitmap.length).toBe(model.length);
  expect(toModel(bitmap)).toEqual(model);
  expect(tailIsClear(bitmap)).toBe(true);
}

describe('construction', () => {
  it('new Bitmap(n) has n clear bits', () => {
    fc.assert(
      fc.property(lengthArb, (n) => {
        const bitmap = new Bitmap(n);
        expectMatches(bitmap, new Array<boolean>(n).fill(false));
        expect(bitmap.isEmpty()).toBe(true);
        expect(bitmap.count()).toBe(0);
      }),
    );
  });

  it('fromBytes reads LSB-first bytes and ignores bits past length', () => {
    fc.assert(
      fc.property(
        lengthArb.chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.uint8Array({ minLength: Math.ceil(n / 8), maxLength: Math.ceil(n / 8) + 5 }),
          ),
        ),
        ([n, bytes]) => {
          const model = Array.from(
            { length: n },
            (_, i) => ((bytes[i >> 3]! >> (i & 7)) & 1) === 1,
          );
          const bitmap = Bitmap.fromBytes(bytes, n);
          expectMatches(bitmap, model);
          // It copies: changing the source afterwards does not change the bitmap.
          bytes.fill(0xa5);
          expectMatches(bitmap, model);
        },
      ),
    );
  });

  it('fromBytes of an ext4-style byte puts bit 0 in the low bit', () => {
    const bitmap = Bitmap.fromBytes(new Uint8Array([0b0000_0101, 0x80]), 16);
    expect(bitmap.toRanges()).toEqual([
      [0, 1],
      [2, 1],
      [15, 1],
    ]);
  });

  it('fromRanges sets the union of the ranges', () => {
    fc.assert(
      fc.property(
        lengthArb.chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.array(
              fc
                .tuple(fc.nat({ max: n }), fc.nat({ max: n }))
                .map(([a, b]): [number, number] => [Math.min(a, b), Math.abs(a - b)]),
              { maxLength: 8 },
            ),
          ),
        ),
        ([n, ranges]) => {
          const model = new Array<boolean>(n).fill(false);
          for (const [s, l] of ranges) for (let i = s; i < s + l; i++) model[i] = true;
          expectMatches(Bitmap.fromRanges(n, ranges), model);
        },
      ),
    );
  });

  it('toBytes is the LSB-first packing with zero padding', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        expect(fromModel(bits).toBytes()).toEqual(modelToBytes(bits));
      }),
    );
  });
});

describe('single bits', () => {
  it('set/clear sequences match the model, get reads them back', () => {
    fc.assert(
      fc.property(
        bitsArb
          .filter((b) => b.length > 0)
          .chain((bits) =>
            fc.tuple(
              fc.constant(bits),
              fc.array(fc.tuple(fc.boolean(), fc.nat({ max: bits.length - 1 })), { maxLength: 50 }),
            ),
          ),
        ([bits, ops]) => {
          const model = [...bits];
          const bitmap = Bitmap.fromBytes(modelToBytes(bits), bits.length);
          for (const [value, i] of ops) {
            expect(value ? bitmap.set(i) : bitmap.clear(i)).toBe(bitmap);
            model[i] = value;
            expect(bitmap.get(i)).toBe(value);
          }
          expectMatches(bitmap, model);
        },
      ),
    );
  });
});

describe('ranges', () => {
  it('setRange matches the model', () => {
    fc.assert(
      fc.property(bitsAndRangeArb, ([bits, start, len]) => {
        const model = bits.map((v, i) => v || (i >= start && i < start + len));
        expectMatches(fromModel(bits).setRange(start, len), model);
      }),
    );
  });

  it('clearRange matches the model', () => {
    fc.assert(
      fc.property(bitsAndRangeArb, ([bits, start, len]) => {
        const model = bits.map((v, i) => v && !(i >= start && i < start + len));
        expectMatches(fromModel(bits).clearRange(start, len), model);
      }),
    );
  });

  it('countRange matches the model', () => {
    fc.assert(
      fc.property(bitsAndRangeArb, ([bits, start, len]) => {
        expect(fromModel(bits).countRange(start, len)).toBe(modelCount(bits, start, start + len));
      }),
    );
  });

  it('setAll sets exactly length bits', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits).setAll();
        expectMatches(bitmap, new Array<boolean>(bits.length).fill(true));
        expect(bitmap.count()).toBe(bits.length);
      }),
    );
  });

  it('setBytes overwrites bitCount bits at a byte-aligned offset and nothing else', () => {
    const arb = bitsArb.chain((bits) =>
      fc
        .tuple(fc.nat({ max: Math.floor(bits.length / 8) }), fc.nat({ max: bits.length }))
        .chain(([byteOffset, rawCount]) => {
          const offset = byteOffset * 8;
          const count = Math.min(rawCount, bits.length - offset);
          return fc.tuple(
            fc.constant(bits),
            fc.constant(offset),
            fc.constant(count),
            fc.uint8Array({ minLength: Math.ceil(count / 8), maxLength: Math.ceil(count / 8) + 3 }),
          );
        }),
    );
    fc.assert(
      fc.property(arb, ([bits, offset, count, bytes]) => {
        const model = bits.map((v, i) =>
          i >= offset && i < offset + count
            ? ((bytes[(i - offset) >> 3]! >> ((i - offset) & 7)) & 1) === 1
            : v,
        );
        expectMatches(fromModel(bits).setBytes(offset, bytes, count), model);
      }),
    );
  });
});

describe('whole-bitmap queries', () => {
  it('count and isEmpty match the model', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits);
        expect(bitmap.count()).toBe(modelCount(bits));
        expect(bitmap.isEmpty()).toBe(modelCount(bits) === 0);
      }),
    );
  });

  it('nextSet and nextClear match the model from every position', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits);
        for (let from = 0; from <= bits.length; from++) {
          const set = bits.indexOf(true, from);
          const clear = bits.indexOf(false, from);
          expect(bitmap.nextSet(from)).toBe(from < bits.length ? set : -1);
          expect(bitmap.nextClear(from)).toBe(from < bits.length ? clear : -1);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('runs, forEachRun and toRanges match the model', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits);
        const expected = modelRuns(bits);
        expect([...bitmap.runs()]).toEqual(expected);
        expect(bitmap.toRanges()).toEqual(expected);
        const seen: [number, number][] = [];
        bitmap.forEachRun((s, l) => {
          seen.push([s, l]);
        });
        expect(seen).toEqual(expected);
      }),
    );
  });

  it('runs and forEachRun over a window cut runs at its edges', () => {
    fc.assert(
      fc.property(bitsAndRangeArb, ([bits, start, len]) => {
        const bitmap = fromModel(bits);
        const expected = modelRuns(bits, start, start + len);
        expect([...bitmap.runs(start, start + len)]).toEqual(expected);
        const seen: [number, number][] = [];
        bitmap.forEachRun((s, l) => seen.push([s, l]), start, start + len);
        expect(seen).toEqual(expected);
      }),
    );
  });

  it('fromRanges(toRanges()) round-trips', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits);
        expect(Bitmap.fromRanges(bits.length, bitmap.toRanges()).equals(bitmap)).toBe(true);
      }),
    );
  });
});

describe('set algebra', () => {
  const cases: [string, (a: Bitmap, b: Bitmap) => Bitmap, (x: boolean, y: boolean) => boolean][] = [
    ['and', (a, b) => a.and(b), (x, y) => x && y],
    ['or', (a, b) => a.or(b), (x, y) => x || y],
    ['andNot', (a, b) => a.andNot(b), (x, y) => x && !y],
  ];
  for (const [name, op, bit] of cases) {
    it(`${name} works in place and matches the model`, () => {
      fc.assert(
        fc.property(pairArb, ([x, y]) => {
          const a = fromModel(x);
          const b = fromModel(y);
          expect(op(a, b)).toBe(a);
          expectMatches(
            a,
            x.map((v, i) => bit(v, y[i]!)),
          );
          expectMatches(b, y);
        }),
      );
    });
  }

  it('not flips every bit and leaves the tail clear', () => {
    fc.assert(
      fc.property(bitsArb, (bits) => {
        const bitmap = fromModel(bits);
        expect(bitmap.not()).toBe(bitmap);
        expectMatches(
          bitmap,
          bits.map((v) => !v),
        );
        expect(bitmap.count()).toBe(bits.length - modelCount(bits));
      }),
    );
  });

  it('equals compares length and bits', () => {
    fc.assert(
      fc.property(pairArb, ([x, y]) => {
        const same = x.every((v, i) => v === y[i]);
        expect(fromModel(x).equals(fromModel(y))).toBe(same);
        expect(fromModel(x).equals(fromModel(x))).toBe(true);
      }),
    );
    expect(new Bitmap(8).equals(new Bitmap(9))).toBe(false);
  });

  it('one differing bit anywhere makes equals false and isEmpty false', () => {
    fc.assert(
      fc.property(
        lengthArb
          .filter((n) => n > 0)
          .chain((n) => fc.tuple(fc.constant(n), fc.nat({ max: n - 1 }))),
        ([n, i]) => {
          const empty = new Bitmap(n);
          const one = new Bitmap(n).set(i);
          expect(one.isEmpty()).toBe(false);
          expect(one.equals(empty)).toBe(false);
          expect(empty.equals(one)).toBe(false);
          const full = new Bitmap(n).setAll();
          expect(full.clone().clear(i).equals(full)).toBe(false);
        },
      ),
    );
  });

  it('clone is equal and independent', () => {
    fc.assert(
      fc.property(
        bitsArb.filter((b) => b.length > 0),
        (bits) => {
          const a = fromModel(bits);
          const b = a.clone();
          expect(b).not.toBe(a);
          expectMatches(b, bits);
          b.not();
          expectMatches(a, bits);
        },
      ),
    );
  });
});

describe('coarsen and refine', () => {
  const factorArb = fc.oneof(
    fc.constantFrom(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
    fc.integer({ min: 1, max: 70 }),
  );

  function modelCoarsen(bits: Model, f: number): Model {
    return Array.from({ length: Math.ceil(bits.length / f) }, (_, j) =>
      bits.slice(j * f, (j + 1) * f).some(Boolean),
    );
  }

  it('coarsen sets a block when any bit inside it is set, the last partial block included', () => {
    fc.assert(
      fc.property(bitsArb, factorArb, (bits, f) => {
        expectMatches(fromModel(bits).coarsen(f), modelCoarsen(bits, f));
      }),
      { numRuns: 300 },
    );
  });

  it('refine repeats each bit factor times', () => {
    fc.assert(
      fc.property(lengthArb.filter((n) => n <= 300).chain(modelArb), factorArb, (bits, f) => {
        // Keep the boolean-array model small; large factors on long bitmaps are covered by the
        // refine-then-coarsen test below.
        fc.pre(bits.length * f <= 40_000);
        expectMatches(
          fromModel(bits).refine(f),
          bits.flatMap((v) => new Array<boolean>(f).fill(v)),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('refine then coarsen by the same factor is the identity', () => {
    fc.assert(
      fc.property(bitsArb, factorArb, (bits, f) => {
        const bitmap = fromModel(bits);
        expect(bitmap.refine(f).coarsen(f).equals(bitmap)).toBe(true);
      }),
    );
  });

  it('a coarse used block covers every fine used block', () => {
    // 4 KiB blocks into 64 KiB chunks: blocks 0 and 39 used, 40 blocks in all; block 39 is in
    // the last, partial chunk (blocks 32–39), which must count.
    const fine = Bitmap.fromRanges(40, [
      [0, 1],
      [39, 1],
    ]);
    expect(fine.coarsen(16).toRanges()).toEqual([
      [0, 1],
      [2, 1],
    ]);
    expect(fine.coarsen(16).length).toBe(3);
  });
});

describe('invalid arguments', () => {
  const b = new Bitmap(100);

  it('rejects bad lengths', () => {
    expect(() => new Bitmap(-1)).toThrow(RangeError);
    expect(() => new Bitmap(1.5)).toThrow(RangeError);
    expect(() => new Bitmap(Number.NaN)).toThrow(RangeError);
    expect(() => new Bitmap(2 ** 40)).toThrow(RangeError);
    expect(() => new Bitmap('8' as unknown as number)).toThrow(TypeError);
  });

  it('rejects bad indexes', () => {
    expect(() => b.get(100)).toThrow(RangeError);
    expect(() => b.get(-1)).toThrow(RangeError);
    expect(() => b.set(0.5)).toThrow(RangeError);
    expect(() => b.clear(2 ** 32)).toThrow(RangeError);
    expect(() => b.get(10n as unknown as number)).toThrow(TypeError);
    expect(() => b.nextSet(101)).toThrow(RangeError);
    expect(() => b.nextClear(-1)).toThrow(RangeError);
    expect(() => b.get(100)).toThrow(/index 100 is out of range \[0, 100\)/);
  });

  it('rejects bad ranges', () => {
    expect(() => b.setRange(90, 11)).toThrow(RangeError);
    expect(() => b.clearRange(-1, 2)).toThrow(RangeError);
    expect(() => b.countRange(0, 101)).toThrow(RangeError);
    expect(() => b.setRange(1.5, 1)).toThrow(RangeError);
    expect(() => b.runs(10, 5)).toThrow(RangeError);
    expect(() => b.forEachRun(() => {}, 0, 101)).toThrow(RangeError);
    expect(() => Bitmap.fromRanges(10, [[8, 3]])).toThrow(RangeError);
  });

  it('rejects mismatched or foreign operands', () => {
    expect(() => b.and(new Bitmap(99))).toThrow(/lengths differ/);
    expect(() => b.or(new Bitmap(101))).toThrow(RangeError);
    expect(() => b.andNot({} as Bitmap)).toThrow(TypeError);
    expect(() => b.equals(null as unknown as Bitmap)).toThrow(TypeError);
  });

  it('rejects bad bytes', () => {
    expect(() => Bitmap.fromBytes(new Uint8Array(1), 9)).toThrow(RangeError);
    expect(() => Bitmap.fromBytes([1] as unknown as Uint8Array, 8)).toThrow(TypeError);
    expect(() => b.setBytes(4, new Uint8Array(1), 4)).toThrow(/multiple of 8/);
    expect(() => b.setBytes(0, new Uint8Array(1), 9)).toThrow(RangeError);
    expect(() => b.setBytes(96, new Uint8Array(1), 8)).toThrow(RangeError);
  });

  it('rejects bad factors', () => {
    expect(() => b.coarsen(0)).toThrow(RangeError);
    expect(() => b.refine(1.5)).toThrow(RangeError);
    expect(() => b.refine(2 ** 40)).toThrow(RangeError);
  });

  it('recognises bitmaps by brand, not only by prototype', () => {
    expect(Bitmap.isInstance(b)).toBe(true);
    expect(Bitmap.isInstance({ length: 100 })).toBe(false);
    expect(Bitmap.isInstance(null)).toBe(false);
  });
});

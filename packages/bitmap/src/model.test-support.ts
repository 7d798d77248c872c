// Test support (not exported by the package): a naive boolean-array model of a bitmap and
// fast-check arbitraries biased towards the cases that break word code — lengths around
// multiples of 8, 32 and 64, empty bitmaps, and long runs that fill or empty whole words.

import fc from 'fast-check';
import { Bitmap } from './bitmap.js';

export type Model = boolean[];

// `FC_NUM_RUNS=5000 pnpm test` soaks every property with more cases than the default 100.
if (process.env.FC_NUM_RUNS) fc.configureGlobal({ numRuns: Number(process.env.FC_NUM_RUNS) });

const EDGE_LENGTHS = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129, 255, 257];

export const lengthArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(...EDGE_LENGTHS),
  fc.integer({ min: 0, max: 200 }),
  fc.integer({ min: 0, max: 1500 }),
);

/** A model of exactly `n` bits: random bits, or alternating runs of random lengths. */
export function modelArb(n: number): fc.Arbitrary<Model> {
  const random = fc.array(fc.boolean(), { minLength: n, maxLength: n });
  const runs = fc
    .tuple(
      fc.boolean(),
      fc.array(fc.integer({ min: 1, max: 150 }), { minLength: 1, maxLength: 30 }),
    )
    .map(([first, lengths]) => {
      const bits: Model = [];
      let value = first;
      for (let k = 0; bits.length < n; k++) {
        const len = lengths[k % lengths.length]!;
        for (let j = 0; j < len && bits.length < n; j++) bits.push(value);
        value = !value;
      }
      return bits;
    });
  const constant = fc.boolean().map((v) => new Array<boolean>(n).fill(v));
  return fc.oneof({ arbitrary: runs, weight: 3 }, { arbitrary: random, weight: 2 }, constant);
}

export const bitsArb: fc.Arbitrary<Model> = lengthArb.chain(modelArb);

/** Two models of the same length. */
export const pairArb: fc.Arbitrary<[Model, Model]> = lengthArb.chain((n) =>
  fc.tuple(modelArb(n), modelArb(n)),
);

/** A model with a `[start, length]` range inside it. */
export const bitsAndRangeArb: fc.Arbitrary<[Model, number, number]> = bitsArb.chain((bits) =>
  fc
    .tuple(fc.nat({ max: bits.length }), fc.nat({ max: bits.length }))
    .map(([a, b]): [Model, number, number] => {
      const start = Math.min(a, b);
      return [bits, start, Math.max(a, b) - start];
    }),
);

/** Builds a Bitmap bit by bit, so it does not depend on the code under test beyond `set`. */
export function fromModel(bits: Model): Bitmap {
  const bitmap = new Bitmap(bits.length);
  bits.forEach((v, i) => {
    if (v) bitmap.set(i);
  });
  return bitmap;
}

/** Reads a Bitmap back bit by bit. */
export function toModel(bitmap: Bitmap): Model {
  return Array.from({ length: bitmap.length }, (_, i) => bitmap.get(i));
}

export function modelRuns(bits: Model, start = 0, end = bits.length): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = start; i < end; i++) {
    if (!bits[i]) continue;
    let j = i;
    while (j < end && bits[j]) j++;
    runs.push([i, j - i]);
    i = j;
  }
  return runs;
}

export function modelCount(bits: Model, start = 0, end = bits.length): number {
  let n = 0;
  for (let i = start; i < end; i++) if (bits[i]) n++;
  return n;
}

/** LSB-first packing, as on disk. */
export function modelToBytes(bits: Model): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((v, i) => {
    if (v) bytes[Math.floor(i / 8)]! |= 1 << (i % 8);
  });
  return bytes;
}

/** Asserts that every word bit past `length` is zero: the invariant whole-word loops rely on. */
export function tailIsClear(bitmap: Bitmap): boolean {
  const used = bitmap.length % 32;
  if (used === 0) return true;
  return bitmap.words[bitmap.words.length - 1]! >>> used === 0;
}

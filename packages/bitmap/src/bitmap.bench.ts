// Throughput of the whole-bitmap operations on a 2^28-bit bitmap (32 MiB, the used-block map of a
// 1 TiB disk in 4 KiB blocks). GB/s = 33.55 MB × hz. Two fills: "used" is 30 % set in runs of 1
// to 600 blocks (files and free-space holes of an aged filesystem), "sparse" has a short run
// every ~80 000 blocks (a fresh, nearly empty disk).

import { bench, describe } from 'vitest';
import { Bitmap } from './bitmap.js';

const LENGTH = 2 ** 28;

/** A deterministic bitmap with `fill` of its bits set in runs averaging `meanRun` bits. */
function makeBitmap(fill: number, meanRun: number, seed: number): Bitmap {
  let state = seed;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  const bitmap = new Bitmap(LENGTH);
  const meanGap = (meanRun * (1 - fill)) / fill;
  let pos = Math.floor(random() * meanGap);
  while (pos < LENGTH) {
    const run = Math.min(1 + Math.floor(random() * 2 * meanRun), LENGTH - pos);
    bitmap.setRange(pos, run);
    pos += run + 1 + Math.floor(random() * 2 * meanGap);
  }
  return bitmap;
}

const used = makeBitmap(0.3, 300, 1);
const usedOther = makeBitmap(0.3, 300, 2);
const sparse = makeBitmap(0.0002, 16, 3);
const sparseOther = makeBitmap(0.0002, 16, 4);
const scratch = used.clone();
const sparseScratch = sparse.clone();

/** Results land here so the JIT cannot drop the work. */
const sink = { value: 0 };
const countRun = (_start: number, length: number) => {
  sink.value += length;
};

describe('popcount (32 MiB bitmap)', () => {
  bench('count, 30% used', () => {
    sink.value += used.count();
  });
  bench('count, sparse', () => {
    sink.value += sparse.count();
  });
});

describe('set algebra, in place (32 MiB bitmaps)', () => {
  bench('and, 30% used', () => {
    scratch.and(usedOther);
  });
  bench('andNot, 30% used', () => {
    scratch.andNot(usedOther);
  });
  bench('or, 30% used', () => {
    scratch.or(usedOther);
  });
  bench('and, sparse', () => {
    sparseScratch.and(sparseOther);
  });
  bench('andNot, sparse', () => {
    sparseScratch.andNot(sparseOther);
  });
});

describe('run iteration (32 MiB bitmap)', () => {
  bench('forEachRun, 30% used', () => {
    used.forEachRun(countRun);
  });
  bench('runs() generator, 30% used', () => {
    for (const [, length] of used.runs()) sink.value += length;
  });
  bench('forEachRun, sparse', () => {
    sparse.forEachRun(countRun);
  });
});

describe('block size change (32 MiB bitmap)', () => {
  bench('coarsen(16), 30% used', () => {
    sink.value += used.coarsen(16).length;
  });
  bench('coarsen(3), 30% used', () => {
    sink.value += used.coarsen(3).length;
  });
});

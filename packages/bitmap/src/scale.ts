// Changing the block size of a used-block map. `coarsen(f)` maps fine block `i` to coarse block
// `Math.floor(i / f)` and sets a coarse bit when any fine bit inside it is set (the last, partial
// coarse block included), so a coarse map never loses a used block. `refine(f)` sets all `f` fine
// bits of every set coarse bit. Powers of two work a word at a time; other factors go run by run.

import { setBits } from './range.js';
import { findClear, findSet } from './scan.js';

/** Bits at positions `p` with `p % period < width`, as an unsigned 32-bit mask. */
function strideMask(period: number, width: number): number {
  let mask = 0;
  for (let p = 0; p < 32; p++) if (p % period < width) mask |= 1 << p;
  return mask >>> 0;
}

interface Step {
  shift: number;
  /** Layout before a compress step (after a spread step): groups of `width` bits every `period`. */
  before: number;
  /** Layout after a compress step (before a spread step). */
  after: number;
}

/**
 * Steps that gather the bits at positions `0, f, 2f, …` of a word into its low `32 / f` bits
 * (compress), and back (spread), for a power of two `f < 32`: each step merges pairs of groups.
 */
function strideSteps(factor: number): Step[] {
  const steps: Step[] = [];
  for (let period = factor, width = 1; period < 32; period *= 2, width *= 2) {
    steps.push({
      shift: period - width,
      before: strideMask(period, width),
      after: strideMask(period * 2, width * 2),
    });
  }
  return steps;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && n <= 2 ** 31 && (n & (n - 1)) === 0;
}

/** Coarse words for a fine bitmap of `length` bits; `dst` must be zeroed and large enough. */
export function coarsenWords(
  src: Uint32Array,
  length: number,
  factor: number,
  dst: Uint32Array,
): void {
  const n = src.length;
  if (isPowerOfTwo(factor) && factor < 32) {
    const perWord = 32 / factor;
    const steps = strideSteps(factor);
    const first = strideMask(factor, 1);
    for (let i = 0; i < n; i++) {
      let w = src[i]!;
      if (w === 0) continue;
      // Fold: bit p becomes the OR of bits p..p+factor-1.
      for (let s = 1; s < factor; s *= 2) w |= w >>> s;
      w &= first;
      for (const step of steps) w = (w | (w >>> step.shift)) & step.after;
      const di = Math.floor(i / factor);
      dst[di] = dst[di]! | (w << ((i % factor) * perWord));
    }
    return;
  }
  if (isPowerOfTwo(factor)) {
    // Each coarse bit covers `factor / 32` whole words: it is set when any of them is non-zero.
    const wordsPerBit = factor / 32;
    for (let i = 0; i < n; i++) {
      if (src[i] === 0) continue;
      const j = Math.floor(i / wordsPerBit);
      const di = Math.floor(j / 32);
      dst[di] = dst[di]! | (1 << (j - di * 32));
      i = (j + 1) * wordsPerBit - 1;
    }
    return;
  }
  let pos = 0;
  while (pos < length) {
    const start = findSet(src, pos, length);
    if (start < 0) return;
    let end = findClear(src, start, length);
    if (end < 0) end = length;
    const coarseEnd = Math.floor((end - 1) / factor) + 1;
    setBits(dst, Math.floor(start / factor), coarseEnd);
    // The rest of the last coarse block is set already; resume after it.
    pos = coarseEnd * factor;
  }
}

/** Fine words for a coarse bitmap of `length` bits; `dst` must be zeroed and large enough. */
export function refineWords(
  src: Uint32Array,
  length: number,
  factor: number,
  dst: Uint32Array,
): void {
  if (isPowerOfTwo(factor) && factor < 32) {
    const perWord = 32 / factor;
    const chunkMask = 2 ** perWord - 1;
    const fill = 2 ** factor - 1;
    const steps = strideSteps(factor).reverse();
    const n = src.length;
    for (let i = 0; i < n; i++) {
      const w = src[i]!;
      if (w === 0) continue;
      const base = i * factor;
      for (let q = 0; q < factor; q++) {
        let x = (w >>> (q * perWord)) & chunkMask;
        if (x === 0) continue;
        for (const step of steps) x = (x | (x << step.shift)) & step.before;
        // Bits now sit every `factor` positions; the multiply widens each into `factor` ones.
        dst[base + q] = Math.imul(x, fill);
      }
    }
    return;
  }
  let pos = 0;
  while (pos < length) {
    const start = findSet(src, pos, length);
    if (start < 0) return;
    let end = findClear(src, start, length);
    if (end < 0) end = length;
    setBits(dst, start * factor, end * factor);
    pos = end;
  }
}

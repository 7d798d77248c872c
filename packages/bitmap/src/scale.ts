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

/**
 * Shifts and masks that gather the bits at positions `0, f, 2f, …` of a word into its low `32 / f`
 * bits (compress) and back (spread), for a power of two `f < 32`. Step `k` merges neighbouring
 * groups: groups of `width` bits every `period` become groups of `2 × width` every `2 × period`.
 * Always four steps (`f = 2` needs all four), padded with no-ops (shift 0, mask all ones), so the
 * hot loops run straight-line code without an inner loop over a step list.
 */
function strideSteps(factor: number): {
  shifts: number[];
  /** Layout after each compress step. */
  after: number[];
  /** Layout before each compress step (after the matching spread step). */
  before: number[];
} {
  const shifts = [0, 0, 0, 0];
  const after = [-1, -1, -1, -1];
  const before = [-1, -1, -1, -1];
  for (let k = 0, period = factor, width = 1; period < 32; k++, period *= 2, width *= 2) {
    shifts[k] = period - width;
    before[k] = strideMask(period, width) | 0;
    after[k] = strideMask(period * 2, width * 2) | 0;
  }
  return { shifts, after, before };
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
    // Each fine word yields `32 / factor` coarse bits; `factor` fine words fill one coarse word.
    const perWord = 32 / factor;
    const { shifts, after } = strideSteps(factor);
    const [s0, s1, s2, s3] = shifts as [number, number, number, number];
    const [m0, m1, m2, m3] = after as [number, number, number, number];
    // Fold shifts: after them bit p holds the OR of bits p..p+factor-1 (no-op shifts are 0).
    const f0 = factor >= 2 ? 1 : 0;
    const f1 = factor >= 4 ? 2 : 0;
    const f2 = factor >= 8 ? 4 : 0;
    const f3 = factor >= 16 ? 8 : 0;
    const first = strideMask(factor, 1) | 0;
    for (let i = 0, di = 0; i < n; di++) {
      let word = 0;
      for (let q = 0; q < factor && i < n; q++, i++) {
        let w = src[i]! | 0; // int32 throughout, so V8 keeps it in a register
        if (w === 0) continue;
        w |= w >>> f0;
        w |= w >>> f1;
        w |= w >>> f2;
        w |= w >>> f3;
        w &= first;
        w = (w | (w >>> s0)) & m0;
        w = (w | (w >>> s1)) & m1;
        w = (w | (w >>> s2)) & m2;
        w = (w | (w >>> s3)) & m3;
        word |= w << (q * perWord);
      }
      dst[di] = word;
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
    // Each chunk of `32 / factor` coarse bits becomes one fine word.
    const perWord = 32 / factor;
    const chunkMask = 2 ** perWord - 1;
    const fill = 2 ** factor - 1;
    const { shifts, before } = strideSteps(factor);
    const [s0, s1, s2, s3] = shifts as [number, number, number, number];
    const [m0, m1, m2, m3] = before as [number, number, number, number];
    const n = src.length;
    for (let i = 0, di = 0; i < n; i++) {
      const w = src[i]!;
      if (w === 0) {
        di += factor;
        continue;
      }
      for (let q = 0; q < factor; q++, di++) {
        let x = (w >>> (q * perWord)) & chunkMask;
        if (x === 0) continue;
        x = (x | (x << s3)) & m3;
        x = (x | (x << s2)) & m2;
        x = (x | (x << s1)) & m1;
        x = (x | (x << s0)) & m0;
        // Bits now sit every `factor` positions; the multiply widens each into `factor` ones.
        dst[di] = Math.imul(x, fill);
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

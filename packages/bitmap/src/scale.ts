// Changing the block size of a used-block map. `coarsen(f)` maps fine block `i` to coarse block
// `Math.floor(i / f)` and sets a coarse bit when any fine bit inside it is set (the last, partial
// coarse block included), so a coarse map never loses a used block. `refine(f)` sets all `f` fine
// bits of every set coarse bit. Factors 2, 4, 8 and 16 work a word at a time, larger powers of
// two a coarse bit at a time (coarsen), and other factors run by run.

import { setBits } from './range.js';
import { findClear, findSet } from './scan.js';

// Word-at-a-time paths for factors 2, 4, 8 and 16. `gather` ORs each group of `f` bits into its
// lowest bit, then packs those bits (at 0, f, 2f, …) into the low `32 / f` bits of the word;
// `scatter` is the inverse packing followed by a multiply that widens each bit into `f` ones. Each
// packing step merges neighbouring groups: groups of `w` bits every `p` positions become groups of
// `2w` bits every `2p`, by `x | x >>> (p − w)` and a mask of the new layout. The constants are
// written out per factor so V8 sees literal shifts; the property tests check them against a
// boolean-array model.

/** The `32 / factor` coarse bits of one fine word. `factor` is 2, 4, 8 or 16. */
function gather(w: number, factor: number): number {
  switch (factor) {
    case 2:
      w = (w | (w >>> 1)) & 0x55555555;
      w = (w | (w >>> 1)) & 0x33333333;
      w = (w | (w >>> 2)) & 0x0f0f0f0f;
      w = (w | (w >>> 4)) & 0x00ff00ff;
      return (w | (w >>> 8)) & 0x0000ffff;
    case 4:
      w |= w >>> 1;
      w = (w | (w >>> 2)) & 0x11111111;
      w = (w | (w >>> 3)) & 0x03030303;
      w = (w | (w >>> 6)) & 0x000f000f;
      return (w | (w >>> 12)) & 0x000000ff;
    case 8:
      w |= w >>> 1;
      w |= w >>> 2;
      w = (w | (w >>> 4)) & 0x01010101;
      w = (w | (w >>> 7)) & 0x00030003;
      return (w | (w >>> 14)) & 0x0000000f;
    default:
      w |= w >>> 1;
      w |= w >>> 2;
      w |= w >>> 4;
      w = (w | (w >>> 8)) & 0x00010001;
      return (w | (w >>> 15)) & 0x00000003;
  }
}

/** One fine word from `32 / factor` coarse bits. `factor` is 2, 4, 8 or 16. */
function scatter(x: number, factor: number): number {
  switch (factor) {
    case 2:
      x = (x | (x << 8)) & 0x00ff00ff;
      x = (x | (x << 4)) & 0x0f0f0f0f;
      x = (x | (x << 2)) & 0x33333333;
      x = (x | (x << 1)) & 0x55555555;
      return Math.imul(x, 0x3);
    case 4:
      x = (x | (x << 12)) & 0x000f000f;
      x = (x | (x << 6)) & 0x03030303;
      x = (x | (x << 3)) & 0x11111111;
      return Math.imul(x, 0xf);
    case 8:
      x = (x | (x << 14)) & 0x00030003;
      x = (x | (x << 7)) & 0x01010101;
      return Math.imul(x, 0xff);
    default:
      x = (x | (x << 15)) & 0x00010001;
      return Math.imul(x, 0xffff);
  }
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
  if (factor === 2 || factor === 4 || factor === 8 || factor === 16) {
    // Each fine word yields `32 / factor` coarse bits; `factor` fine words fill one coarse word.
    const perWord = 32 / factor;
    for (let i = 0, di = 0; i < n; di++) {
      let word = 0;
      for (let q = 0; q < factor && i < n; q++, i++) {
        const w = src[i]! | 0;
        if (w !== 0) word |= gather(w, factor) << (q * perWord);
      }
      dst[di] = word;
    }
    return;
  }
  if (factor >= 32 && isPowerOfTwo(factor)) {
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
  if (factor === 2 || factor === 4 || factor === 8 || factor === 16) {
    // Each chunk of `32 / factor` coarse bits becomes one fine word.
    const perWord = 32 / factor;
    const chunkMask = 2 ** perWord - 1;
    const n = src.length;
    for (let i = 0, di = 0; i < n; i++, di += factor) {
      const w = src[i]!;
      if (w === 0) continue;
      for (let q = 0; q < factor; q++) {
        const x = (w >>> (q * perWord)) & chunkMask;
        if (x !== 0) dst[di + q] = scatter(x, factor);
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

// Mutations of real images: bit flips, interesting bytes and 32-bit values, small random runs,
// and truncation, placed in the regions a target says hold its metadata. Seeded: a case is
// reproducible from (seed, case number) alone.
import { prng } from '@diskube/core/test';

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0xfffffffe];

/**
 * @typedef {{ bytes: Uint8Array, description: string, touched: Array<[number, number]> }} Mutant
 *   `touched`: the byte ranges the mutations changed (a truncation touches everything after it).
 * @typedef {Array<[offset: number, length: number]>} Regions
 */

/**
 * The `index`-th mutant of `original` under `seed`: 1 to 4 mutations, each at an offset drawn
 * from `regions` (clipped to the image).
 * @param {Uint8Array} original
 * @param {Regions} regions
 * @param {number} seed
 * @param {number} index
 * @returns {Mutant}
 */
export function mutant(original, regions, seed, index) {
  const random = prng((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  const pick = (/** @type {number} */ n) => Math.floor(random() * n);
  const clipped = regions
    .map(([o, l]) => /** @type {[number, number]} */ ([o, Math.min(l, original.length - o)]))
    .filter(([o, l]) => o >= 0 && l > 0);
  const total = clipped.reduce((sum, [, l]) => sum + l, 0);
  const offsetIn = () => {
    let at = pick(total);
    for (const [o, l] of clipped) {
      if (at < l) return o + at;
      at -= l;
    }
    return 0;
  };
  let bytes = original.slice();
  const steps = [];
  /** @type {Array<[number, number]>} */
  const touched = [];
  const count = 1 + pick(4);
  for (let i = 0; i < count; i++) {
    const at = offsetIn();
    const kind = pick(10);
    if (kind < 4) {
      const bit = pick(8);
      bytes[at] = (bytes[at] ?? 0) ^ (1 << bit);
      touched.push([at, 1]);
      steps.push(`flip bit ${bit} of byte ${at}`);
    } else if (kind < 6) {
      const value = INTERESTING_8[pick(INTERESTING_8.length)] ?? 0;
      bytes[at] = value;
      touched.push([at, 1]);
      steps.push(`byte ${at} = 0x${value.toString(16)}`);
    } else if (kind < 8) {
      const value = INTERESTING_32[pick(INTERESTING_32.length)] ?? 0;
      const aligned = at - (at % 4);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (aligned + 4 <= bytes.length) view.setUint32(aligned, value, pick(2) === 0);
      touched.push([aligned, 4]);
      steps.push(`u32 at ${aligned} = 0x${value.toString(16)}`);
    } else if (kind < 9) {
      const length = Math.min(1 + pick(64), bytes.length - at);
      for (let k = 0; k < length; k++) bytes[at + k] = pick(256);
      touched.push([at, length]);
      steps.push(`${length} random bytes at ${at}`);
    } else {
      // Truncate to a sector boundary past the mutation point: a short or torn image.
      const end = Math.max(512, at - (at % 512));
      bytes = bytes.slice(0, end);
      touched.push([end, Number.POSITIVE_INFINITY]);
      steps.push(`truncate to ${end}`);
    }
  }
  // A mutation may write what was there (an interesting byte the image already held): a mutant
  // equal to its original tests nothing, and "accepted" would then be no finding. Make it differ.
  if (bytes.length === original.length && bytes.every((b, i) => b === original[i])) {
    const at = touched[0]?.[0] ?? 0;
    bytes[at] = (bytes[at] ?? 0) ^ 1;
    steps.push(`flip bit 0 of byte ${at} (the mutations above changed nothing)`);
  }
  return { bytes, description: steps.join('; '), touched };
}

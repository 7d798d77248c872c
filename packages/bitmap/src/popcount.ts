// Population count over 32-bit words. SWAR (SIMD within a register): add adjacent bit pairs,
// nibbles, then bytes, and sum the four byte counts with one multiply. `Math.imul` keeps the
// multiply in 32-bit integer arithmetic so V8 compiles the whole thing to a handful of ALU ops.

/** Number of set bits in a 32-bit word (the value is taken modulo 2^32). */
export function popcount32(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Number of set bits in `words[from..to)`. Zero words cost one compare. */
export function popcountWords(words: Uint32Array, from: number, to: number): number {
  let total = 0;
  for (let i = from; i < to; i++) {
    const w = words[i]!;
    if (w === 0) continue;
    let v = w - ((w >>> 1) & 0x55555555);
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
    total += Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  return total;
}

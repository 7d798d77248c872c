// Word-at-a-time searches for the next set or clear bit. Bit `i` lives in word `Math.floor(i / 32)`
// at position `i % 32` (LSB first). Bit indexes may exceed 2^32, so they are never passed through
// `>>>` or `| 0`; only word values and in-word positions (< 32) are.

/** Index (0–31) of the lowest set bit of a non-zero 32-bit word. */
export function ctz32(word: number): number {
  return 31 - Math.clz32(word & -word);
}

/**
 * First set bit in `[from, end)`, or −1. Requires `from < end`; zero words are skipped with one
 * compare each.
 */
export function findSet(words: Uint32Array, from: number, end: number): number {
  let wi = Math.floor(from / 32);
  const last = Math.floor((end - 1) / 32);
  let w = words[wi]! & (-1 << (from - wi * 32));
  while (w === 0) {
    if (++wi > last) return -1;
    w = words[wi]!;
  }
  const index = wi * 32 + ctz32(w);
  return index < end ? index : -1;
}

/**
 * First clear bit in `[from, end)`, or −1. Requires `from < end`; full words are skipped with one
 * compare each.
 */
export function findClear(words: Uint32Array, from: number, end: number): number {
  let wi = Math.floor(from / 32);
  const last = Math.floor((end - 1) / 32);
  let w = ~words[wi]! & (-1 << (from - wi * 32));
  while (w === 0) {
    if (++wi > last) return -1;
    w = ~words[wi]!;
  }
  const index = wi * 32 + ctz32(w);
  return index < end ? index : -1;
}

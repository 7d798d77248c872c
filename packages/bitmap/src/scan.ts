// Word-at-a-time searches for the next set or clear bit. Bit `i` lives in word `Math.floor(i / 32)`
// at position `i % 32` (LSB first). Bit indexes may exceed 2^32, so they are never passed through
// `>>>` or `| 0`; only word values and in-word positions (< 32) are.

/** Index (0–31) of the lowest set bit of a non-zero 32-bit word. */
export function ctz32(word: number): number {
  return 31 - Math.clz32(word & -word);
}

/**
 * First set bit in `[from, end)`, or −1. Requires `from < end`.
 */
export function findSet(words: Uint32Array, from: number, end: number): number {
  let wi = Math.floor(from / 32);
  const last = Math.floor((end - 1) / 32);
  let w = words[wi]! & (-1 << (from - wi * 32));
  if (w === 0) {
    // Free space: skip four zero words per compare, then finish word by word.
    wi++;
    while (
      wi + 3 <= last &&
      (words[wi]! | words[wi + 1]! | words[wi + 2]! | words[wi + 3]!) === 0
    ) {
      wi += 4;
    }
    for (; wi <= last; wi++) {
      w = words[wi]! | 0; // int32 like the masked first word, so V8 keeps one representation
      if (w !== 0) break;
    }
    if (wi > last) return -1;
  }
  const index = wi * 32 + ctz32(w);
  return index < end ? index : -1;
}

/**
 * First clear bit in `[from, end)`, or −1. Requires `from < end`.
 */
export function findClear(words: Uint32Array, from: number, end: number): number {
  let wi = Math.floor(from / 32);
  const last = Math.floor((end - 1) / 32);
  let w = ~words[wi]! & (-1 << (from - wi * 32));
  if (w === 0) {
    // Long used runs: skip four full words per compare (`&` of full words is −1 as an int32).
    wi++;
    while (
      wi + 3 <= last &&
      (words[wi]! & words[wi + 1]! & words[wi + 2]! & words[wi + 3]!) === -1
    ) {
      wi += 4;
    }
    for (; wi <= last; wi++) {
      w = ~words[wi]!;
      if (w !== 0) break;
    }
    if (wi > last) return -1;
  }
  const index = wi * 32 + ctz32(w);
  return index < end ? index : -1;
}

/**
 * Calls `callback(start, length)` for each run of set bits in `[start, end)`, cut at the window's
 * edges. One pass over the words: runs that start and end inside a word cost no search call, and
 * between runs empty words (or, inside a run, full words) are skipped four per compare. The last
 * word is masked at `end`, so a run never reaches past the window.
 */
export function forEachRunIn(
  words: Uint32Array,
  start: number,
  end: number,
  callback: (start: number, length: number) => void,
): void {
  if (start >= end) return;
  const last = Math.floor((end - 1) / 32);
  const lastMask = (0xffffffff >>> (31 - (end - 1 - last * 32))) | 0;
  let wi = Math.floor(start / 32);
  let w = words[wi]! & (-1 << (start - wi * 32));
  let runStart = -1;
  for (;;) {
    if (wi === last) w &= lastMask;
    const base = wi * 32;
    // Walk the transitions inside this word; `p` is the next in-word position to look from.
    for (let p = 0; ; ) {
      if (runStart < 0) {
        const m = w & (-1 << p);
        if (m === 0) break;
        p = ctz32(m);
        runStart = base + p;
      } else {
        const m = ~w & (-1 << p);
        if (m === 0) break;
        p = ctz32(m);
        callback(runStart, base + p - runStart);
        runStart = -1;
      }
    }
    wi++;
    // Skip to the next word with a transition; the last word is always loaded (it needs masking).
    if (runStart < 0) {
      while (
        wi + 4 <= last &&
        (words[wi]! | words[wi + 1]! | words[wi + 2]! | words[wi + 3]!) === 0
      ) {
        wi += 4;
      }
      while (wi < last && words[wi] === 0) wi++;
      if (wi > last) return;
    } else {
      while (
        wi + 4 <= last &&
        (words[wi]! & words[wi + 1]! & words[wi + 2]! & words[wi + 3]!) === -1
      ) {
        wi += 4;
      }
      while (wi < last && words[wi] === 0xffffffff) wi++;
      if (wi > last) {
        callback(runStart, end - runStart);
        return;
      }
    }
    w = words[wi]! | 0;
  }
}

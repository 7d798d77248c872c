// Set algebra and comparisons over equal-length word arrays. The loops are unrolled four times: V8 does
// not vectorise, and the unrolled form measured ~1.3× faster on 32 MiB bitmaps (fewer loop-carried
// compares and bounds checks per word).

export function andWords(a: Uint32Array, b: Uint32Array): void {
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    a[i] = a[i]! & b[i]!;
    a[i + 1] = a[i + 1]! & b[i + 1]!;
    a[i + 2] = a[i + 2]! & b[i + 2]!;
    a[i + 3] = a[i + 3]! & b[i + 3]!;
  }
  for (; i < n; i++) a[i] = a[i]! & b[i]!;
}

export function orWords(a: Uint32Array, b: Uint32Array): void {
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    a[i] = a[i]! | b[i]!;
    a[i + 1] = a[i + 1]! | b[i + 1]!;
    a[i + 2] = a[i + 2]! | b[i + 2]!;
    a[i + 3] = a[i + 3]! | b[i + 3]!;
  }
  for (; i < n; i++) a[i] = a[i]! | b[i]!;
}

export function andNotWords(a: Uint32Array, b: Uint32Array): void {
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    a[i] = a[i]! & ~b[i]!;
    a[i + 1] = a[i + 1]! & ~b[i + 1]!;
    a[i + 2] = a[i + 2]! & ~b[i + 2]!;
    a[i + 3] = a[i + 3]! & ~b[i + 3]!;
  }
  for (; i < n; i++) a[i] = a[i]! & ~b[i]!;
}

/** Flips every word; the caller clears the bits past the bitmap's length afterwards. */
export function notWords(a: Uint32Array): void {
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    a[i] = ~a[i]!;
    a[i + 1] = ~a[i + 1]!;
    a[i + 2] = ~a[i + 2]!;
    a[i + 3] = ~a[i + 3]!;
  }
  for (; i < n; i++) a[i] = ~a[i]!;
}

/** True when every word is zero; eight words per compare. */
export function allZero(a: Uint32Array): boolean {
  const n = a.length;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    if (
      (a[i]! |
        a[i + 1]! |
        a[i + 2]! |
        a[i + 3]! |
        a[i + 4]! |
        a[i + 5]! |
        a[i + 6]! |
        a[i + 7]!) !==
      0
    ) {
      return false;
    }
  }
  for (; i < n; i++) if (a[i] !== 0) return false;
  return true;
}

/** True when both arrays hold the same words; four words per compare. */
export function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    if (
      ((a[i]! ^ b[i]!) |
        (a[i + 1]! ^ b[i + 1]!) |
        (a[i + 2]! ^ b[i + 2]!) |
        (a[i + 3]! ^ b[i + 3]!)) !==
      0
    ) {
      return false;
    }
  }
  for (; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

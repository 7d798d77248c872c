// Conversion between the word array and an on-disk LSB-first bitmap (ext4 block bitmaps, the NTFS
// $Bitmap): bit `i` is bit `i % 8` of byte `Math.floor(i / 8)`. On a little-endian host byte `k`
// of a Uint32Array's buffer is exactly bits `8k..8k+7`, so the bytes are copied as they are. On a
// big-endian host each byte is placed in its word explicitly. Both paths take `littleEndian` as a
// parameter so the tests run each of them whatever the host is.

/** True when the host stores typed-array words least significant byte first (x86, ARM). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Overwrites bytes `byteOffset..byteOffset + src.length` of the bitmap with `src`. */
export function writeBytes(
  words: Uint32Array,
  byteOffset: number,
  src: Uint8Array,
  littleEndian = HOST_LITTLE_ENDIAN,
): void {
  if (littleEndian) {
    // A view of just the target bytes: a view of the whole buffer could exceed the typed-array
    // length limit (2^32 elements on Node 20) for bitmaps above 2^35 bits.
    new Uint8Array(words.buffer, words.byteOffset + byteOffset, src.length).set(src);
    return;
  }
  for (let k = 0; k < src.length; k++) {
    const byteIndex = byteOffset + k;
    const wi = Math.floor(byteIndex / 4);
    const shift = (byteIndex - wi * 4) * 8;
    words[wi] = (words[wi]! & ~(0xff << shift)) | (src[k]! << shift);
  }
}

/** Copies the first `dst.length` bytes of the bitmap into `dst`. */
export function readBytes(
  words: Uint32Array,
  dst: Uint8Array,
  littleEndian = HOST_LITTLE_ENDIAN,
): void {
  if (littleEndian) {
    dst.set(new Uint8Array(words.buffer, words.byteOffset, dst.length));
    return;
  }
  for (let k = 0; k < dst.length; k++) {
    const wi = Math.floor(k / 4);
    dst[k] = words[wi]! >>> ((k - wi * 4) * 8);
  }
}

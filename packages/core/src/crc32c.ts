// Sources: RFC 3720 §B.4 (CRC-32C, Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78);
// check value crc32c("123456789") = 0xE3069283. One portable implementation for every package:
// ext4 and VHDX metadata, and the backup format's fallback when no native CRC loads.

const POLY = 0x82f63b78;

/** Slicing-by-8 tables: TABLES[k][b] is the CRC register of byte b followed by k zero bytes. */
const TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1]!;
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (prev[n]! >>> 8) ^ t0[prev[n]! & 0xff]!;
    tables.push(t);
  }
  return tables;
})();

/**
 * The raw CRC-32C register after feeding `bytes[start, end)` into `register`, with no initial or
 * final inversion. ext4 stores exactly this (the kernel's `crc32c_le(~0, …)`), and chains it.
 */
export function crc32cUpdate(
  register: number,
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let c = register >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo =
      (c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>>
      0;
    c =
      t7[lo & 0xff]! ^
      t6[(lo >>> 8) & 0xff]! ^
      t5[(lo >>> 16) & 0xff]! ^
      t4[lo >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
  }
  for (; i < end; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/**
 * Standard CRC-32C of `bytes` (initial ~0, final inversion), as VHDX and most tools use it. Pass
 * the previous result as `previous` to continue over data delivered in pieces.
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  return ~crc32cUpdate(~previous >>> 0, bytes) >>> 0;
}

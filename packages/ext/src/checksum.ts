// Sources: kernel Documentation/filesystems/ext4/overview.rst ("Checksums"), e2fsprogs
// lib/ext2fs/crc32c.c and lib/ext2fs/crc16.c.
//
// ext4 stores crc32c values *without* the final bit inversion of the standard CRC-32C (the
// kernel's `crc32c_le(~0, …)` returns the raw register). `crc32cRaw` (core's `crc32cUpdate`)
// computes exactly that, so its results can be compared with on-disk fields directly and chained
// (the checksum seed is the raw crc of the UUID, fed in as the initial register of later checksums).
import { crc32c, crc32cUpdate } from '@diskube/core';

//
// Group descriptors without metadata_csum use CRC-16 with the reflected polynomial 0xA001
// (CRC-16/ARC), initial value 0xFFFF, no final inversion.

function makeTable(poly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
}

const CRC16_TABLE = makeTable(0xa001);

/** Raw (not inverted) crc32c register after feeding `bytes`, starting from `crc`. */
export const crc32cRaw = crc32cUpdate;

/** Standard CRC-32C (Castagnoli), as most tools print it: `~crc32cRaw(~0, bytes)`. */
export { crc32c };

/** CRC-16 (polynomial 0xA001 reflected) register after feeding `bytes`, starting from `crc`. */
export function crc16(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc & 0xffff;
  for (let i = start; i < end; i++) c = (CRC16_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)) & 0xffff;
  return c;
}

/** Little-endian bytes of a 32-bit value, for feeding group numbers into checksums. */
export function le32(value: number): Uint8Array {
  return new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24]);
}

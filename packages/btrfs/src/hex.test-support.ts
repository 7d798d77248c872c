// Byte builders for the structure tests: a minimal valid superblock (one device of 128 MiB, one
// SYSTEM chunk in the sys_chunk_array) and a chunk, patched per test.
import { crc32c } from '@diskube/core';

export const DEVICE = 128 << 20;

/** A `btrfs_chunk` with its stripes: `length` at `offsets`, of `type`. */
export function chunkBytes(length: number, type: bigint, offsets: number[], devid = 1): Uint8Array {
  const b = new Uint8Array(48 + 32 * offsets.length);
  const v = new DataView(b.buffer);
  v.setBigUint64(0x00, BigInt(length), true);
  v.setBigUint64(0x08, 2n, true); // owner: the extent tree
  v.setBigUint64(0x10, 0x10000n, true); // stripe_len
  v.setBigUint64(0x18, type, true);
  v.setUint32(0x20, 0x10000, true);
  v.setUint32(0x24, 0x10000, true);
  v.setUint32(0x28, 4096, true);
  v.setUint16(0x2c, offsets.length, true);
  v.setUint16(0x2e, 1, true);
  offsets.forEach((o, i) => {
    v.setBigUint64(0x30 + i * 32, BigInt(devid), true);
    v.setBigUint64(0x38 + i * 32, BigInt(o), true);
  });
  return b;
}

/** A valid primary superblock (4096 bytes, checksum set after `patch`). */
export function superblockBytes(
  patch: (v: DataView, b: Uint8Array) => void = () => {},
): Uint8Array {
  const b = new Uint8Array(4096);
  const v = new DataView(b.buffer);
  b.fill(0x11, 0x20, 0x30); // fsid
  v.setBigUint64(0x30, 0x10000n, true);
  b.set(new TextEncoder().encode('_BHRfS_M'), 0x40);
  v.setBigUint64(0x48, 7n, true);
  v.setBigUint64(0x50, 0x1d40000n, true);
  v.setBigUint64(0x58, 0x1504000n, true);
  v.setBigUint64(0x70, BigInt(DEVICE), true);
  v.setBigUint64(0x88, 1n, true);
  v.setUint32(0x90, 4096, true);
  v.setUint32(0x94, 16384, true);
  v.setUint32(0x9c, 4096, true);
  v.setBigUint64(0xb4, 3n, true);
  v.setBigUint64(0xbc, 0x341n, true);
  v.setBigUint64(0xc9, 1n, true); // dev_item.devid
  v.setBigUint64(0xd1, BigInt(DEVICE), true);
  b.set(new TextEncoder().encode('label'), 0x12b);
  // sys_chunk_array: key (256, 228, 0x1500000) + a SYSTEM|DUP chunk.
  const chunk = chunkBytes(0x800000, 0x22n, [0x1500000, 0x1d00000]);
  v.setBigUint64(0x32b, 256n, true);
  v.setUint8(0x333, 228);
  v.setBigUint64(0x334, 0x1500000n, true);
  b.set(chunk, 0x32b + 17);
  v.setUint32(0xa0, 17 + chunk.length, true);
  patch(v, b);
  v.setUint32(0, crc32c(b.subarray(0x20)), true);
  return b;
}

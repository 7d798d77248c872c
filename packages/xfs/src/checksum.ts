import { crc32cUpdate } from '@diskube/core';

// Sources: kernel fs/xfs/libxfs/xfs_cksum.h (xfs_start_cksum_safe, xfs_end_cksum,
// xfs_verify_cksum). Every v5 metadata block carries a CRC-32C of the whole block (or sector)
// computed with its own 4-byte CRC field taken as zero, inverted, and stored little-endian even
// though every other field is big-endian.

/** The CRC-32C XFS stores for `bytes[start, end)` with the CRC field at `crcAt` taken as zero. */
export function xfsChecksum(
  bytes: Uint8Array,
  crcAt: number,
  start = 0,
  end = bytes.length,
): number {
  let c = crc32cUpdate(0xffffffff, bytes, start, start + crcAt);
  c = crc32cUpdate(c, ZERO4);
  c = crc32cUpdate(c, bytes, start + crcAt + 4, end);
  return ~c >>> 0;
}

const ZERO4 = new Uint8Array(4);

/** The little-endian CRC stored at `bytes[at]`. */
export function storedChecksum(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
  );
}

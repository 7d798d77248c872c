// Sources: RFC 3720 §B.4 (CRC32C, Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78);
// check value crc32c("123456789") = 0xE3069283.
import { createRequire } from 'node:module';
import { crc32c as portable } from '@diskube/core';

type Crc32c = (input: Uint8Array, initialState?: number) => number;

/**
 * The SIMD implementation from @node-rs/crc32 (prebuilt per platform, ~3.5 GB/s here) when it
 * loads; the portable table version below otherwise (~0.5 GB/s). Both are tested to agree.
 */
const native: Crc32c | null = (() => {
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: Crc32c }).crc32c;
  } catch {
    return null;
  }
})();

/**
 * Continue a CRC32C over `bytes`. Start with `crc32c(bytes)` (initial 0); pass the previous result
 * to `crc32c(more, previous)` to checksum data delivered in pieces.
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  return native !== null ? native(bytes, previous) : portable(bytes, previous);
}

/** True when the SIMD implementation is in use. */
export const crc32cIsNative = native !== null;

/** Table-driven CRC32C (core's slicing-by-8); the fallback, and the reference in tests. */
export const crc32cPortable: (bytes: Uint8Array, previous?: number) => number = portable;

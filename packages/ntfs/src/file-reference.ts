import type { FieldReader } from '@diskube/core';

/**
 * A 64-bit MFT file reference (MFT_REF): the low 48 bits are the record number, the high 16 a
 * sequence number. Read in two parts so a large sequence number never trips the 2^53 check.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (MFT_REF, MREF, MSEQNO).
 */
export function fileReference(f: FieldReader, at: number): { record: number; sequence: number } {
  const lo = f.u32le(at);
  const mid = f.u16le(at + 4);
  const sequence = f.u16le(at + 6);
  return { record: mid * 2 ** 32 + lo, sequence };
}

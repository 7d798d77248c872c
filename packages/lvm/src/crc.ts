import { crc32Update } from '@diskube/core';

// Sources: LVM2 lib/misc/crc.c (calc_crc) and lib/format_text/layout.h (INITIAL_CRC). LVM's
// checksum is the reflected CRC-32 register (0xEDB88320) started at 0xf597a6cf, with no final
// inversion (unlike zlib's CRC-32, which starts at and finishes with all ones).

/** calc_crc's starting value for the label, the metadata area header and the metadata text. */
export const LVM_INITIAL_CRC = 0xf597a6cf;

/** LVM's `calc_crc(initial, bytes)`; chain calls to checksum data split in two (a wrapped buffer). */
export function lvmCrc(bytes: Uint8Array, initial = LVM_INITIAL_CRC): number {
  return crc32Update(initial, bytes);
}

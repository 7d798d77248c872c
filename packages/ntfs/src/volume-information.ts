import { CorruptError, FieldReader } from '@diskube/core';
import type { NtfsReason } from './reasons.js';

/** VOLUME_FLAGS (ntfs-3g layout.h). */
export const VOLUME_IS_DIRTY = 0x0001;
export const VOLUME_CHKDSK_UNDERWAY = 0x4000;

export interface VolumeInformation {
  majorVersion: number;
  minorVersion: number;
  flags: number;
}

/**
 * Parse the resident value of $Volume's $VOLUME_INFORMATION attribute.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (VOLUME_INFORMATION); libyal libfsntfs
 * "The volume information attribute".
 *
 * | off  | size | field     |
 * | 0x00 | 8    | reserved  |
 * | 0x08 | 1    | major_ver |
 * | 0x09 | 1    | minor_ver |
 * | 0x0a | 2    | flags     |
 */
export function parseVolumeInformation(value: Uint8Array, at: number): VolumeInformation {
  const s = '$VOLUME_INFORMATION';
  const f = new FieldReader<NtfsReason>(value, s, at).need(0x0c);
  const major_ver = f.u8(0x08);
  const minor_ver = f.u8(0x09);
  const flags = f.u16le(0x0a);
  if (major_ver < 1 || major_ver > 3) {
    throw new CorruptError(`NTFS version ${major_ver}.${minor_ver} is unknown`, {
      structure: s,
      offset: at + 0x08,
      reason: 'bad-version',
    });
  }
  return { majorVersion: major_ver, minorVersion: minor_ver, flags };
}

import { CorruptError } from '@diskube/core';
import { need, u8, u16 } from './bytes.js';

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
  need(value, 0x0c, s, at);
  const major_ver = u8(value, 0x08, s, at);
  const minor_ver = u8(value, 0x09, s, at);
  const flags = u16(value, 0x0a, s, at);
  if (major_ver < 1 || major_ver > 3) {
    throw new CorruptError(`NTFS version ${major_ver}.${minor_ver} is unknown`, {
      structure: s,
      offset: at + 0x08,
      reason: 'bad-version',
    });
  }
  return { majorVersion: major_ver, minorVersion: minor_ver, flags };
}

import { FieldReader } from '@diskube/core';
import type { FatReason } from './reasons.js';

/** FAT32's FSInfo sector: hints only (free count, next free), never trusted for allocation. */
export interface FsInfo {
  /** All three signatures present (FSI_LeadSig, FSI_StrucSig, FSI_TrailSig). */
  valid: boolean;
  /** FSI_Free_Count, or undefined when unknown (0xFFFFFFFF). */
  freeCount: number | undefined;
}

/**
 * Parses the FSInfo sector (its first 512 bytes).
 *
 * Sources: fatgen103 1.03, "FAT32 FSInfo Sector Structure and Backup Boot Sector".
 */
export function parseFsInfo(bytes: Uint8Array, offset = 0): FsInfo {
  const r = new FieldReader<FatReason>(bytes, 'FAT32 FSInfo sector', offset).need(512);
  const FSI_LeadSig = r.u32le(0x000);
  const FSI_StrucSig = r.u32le(0x1e4);
  const FSI_Free_Count = r.u32le(0x1e8);
  const FSI_TrailSig = r.u32le(0x1fc);
  return {
    valid: FSI_LeadSig === 0x41615252 && FSI_StrucSig === 0x61417272 && FSI_TrailSig === 0xaa550000,
    freeCount: FSI_Free_Count === 0xffffffff ? undefined : FSI_Free_Count,
  };
}

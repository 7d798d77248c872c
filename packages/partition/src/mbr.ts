// Sources: "Master boot record" and "Extended boot record" layouts as documented by
// util-linux libfdisk (dos.c) and the IBM PC partition-table convention; type codes from
// util-linux's list. Offsets are within a 512-byte sector; integers little-endian.
import { FieldReader } from '@diskube/core';
import type { PartitionReason } from './reasons.js';

/** One of the four 16-byte entries at 0x1BE of an MBR or EBR. */
export interface MbrEntry {
  /** 0x00 or 0x80 (bootable). */
  status: number;
  type: number;
  /** First sector, relative to a base that depends on the entry's role. */
  lbaStart: number;
  sectorCount: number;
}

export const MBR_ENTRY_OFFSET = 0x1be;
export const MBR_SIGNATURE_OFFSET = 0x1fe;
export const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
export const GPT_PROTECTIVE_TYPE = 0xee;

/**
 * Parses the four partition entries of an MBR or EBR sector. Returns null when the sector does
 * not look like one: no 0x55AA signature, or a status byte other than 0x00 / 0x80 (which is how
 * a FAT or NTFS boot sector, which also ends in 0x55AA, is told apart).
 */
export function parseMbrSector(sector: Uint8Array, sectorOffset: number): MbrEntry[] | null {
  const f = new FieldReader<PartitionReason>(sector, 'MBR', sectorOffset).need(512);
  if (f.u16le(MBR_SIGNATURE_OFFSET) !== 0xaa55) return null;
  const entries: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const at = MBR_ENTRY_OFFSET + 16 * i;
    const status = f.u8(at + 0x0);
    const type = f.u8(at + 0x4);
    const lbaStart = f.u32le(at + 0x8);
    const sectorCount = f.u32le(at + 0xc);
    if (status !== 0x00 && status !== 0x80) return null;
    entries.push({ status, type, lbaStart, sectorCount });
  }
  return entries;
}

/**
 * True when a sector that ends in 0x55AA looks like the boot sector of a FAT, NTFS or exFAT
 * volume rather than an MBR: an x86 jump (`EB xx 90` or `E9 xx xx`), an 8-byte OEM name of
 * printable ASCII at 0x03, and a BPB bytes-per-sector (0x0B) of 512–4096 (exFAT, whose BPB area
 * is zero, by its OEM name `EXFAT   `). MBR boot code does not pass: Windows' starts `33 C0` (no
 * jump); GRUB's `EB 63 90` is followed by a BPB placeholder left zero on a partitioned disk.
 */
export function looksLikeBootSector(sector: Uint8Array): boolean {
  const f = new FieldReader<PartitionReason>(sector, 'boot sector').need(512);
  const jump = f.u8(0x00);
  if (!((jump === 0xeb && f.u8(0x02) === 0x90) || jump === 0xe9)) return false;
  const oem = f.slice(0x03, 8);
  if (!oem.every((b) => b >= 0x20 && b <= 0x7e)) return false;
  if (f.ascii(0x03, 8) === 'EXFAT   ') return true;
  const bytesPerSector = f.u16le(0x0b);
  return (
    bytesPerSector >= 512 && bytesPerSector <= 4096 && (bytesPerSector & (bytesPerSector - 1)) === 0
  );
}

const MBR_TYPE_NAMES: Record<number, string> = {
  1: 'FAT12',
  4: 'FAT16 <32M',
  5: 'Extended',
  6: 'FAT16',
  7: 'HPFS/NTFS/exFAT',
  11: 'W95 FAT32',
  12: 'W95 FAT32 (LBA)',
  14: 'W95 FAT16 (LBA)',
  15: 'W95 Extended (LBA)',
  39: 'Hidden NTFS WinRE',
  130: 'Linux swap',
  131: 'Linux',
  133: 'Linux extended',
  142: 'Linux LVM',
  218: 'Non-FS data',
  238: 'GPT protective',
  239: 'EFI (FAT-12/16/32)',
  253: 'Linux raid autodetect',
};

export function mbrTypeName(type: number): string {
  return MBR_TYPE_NAMES[type] ?? 'unknown';
}

import { CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { FatReason } from './reasons.js';

/** The boot sector is read as its first 512 bytes: the BPB and the 0x55AA signature live there. */
export const BOOT_SECTOR_SIZE = 512;

export type FatType = 12 | 16 | 32;

/** The boot sector fields the driver relies on, and the layout computed from them. */
export interface BootSector {
  fatType: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  /** Bytes per cluster. */
  clusterSize: number;
  reservedSectors: number;
  fatCount: number;
  /** Sectors per FAT (BPB_FATSz16, or BPB_FATSz32 when that is 0). */
  fatSectors: number;
  /** FAT12/16 root directory entries (0 on FAT32). */
  rootEntries: number;
  /** Sectors of the FAT12/16 root directory region (0 on FAT32). */
  rootDirSectors: number;
  totalSectors: number;
  media: number;
  /** First sector of the data region (cluster 2). */
  firstDataSector: number;
  /** Data clusters: valid cluster numbers are 2 … clusterCount + 1. */
  clusterCount: number;
  /** BS_Reserved1 bit 0, the "volume dirty" flag Linux and Windows NT set while mounted. */
  dirtyFlag: boolean;
  /** BS_VolLab trimmed, '' for none (or "NO NAME"); only with an extended boot signature. */
  label: string;
  /** BS_VolID, only with an extended boot signature. */
  volumeId: number | undefined;
  /** FAT32 only: BPB_ExtFlags bit 7 (only the active FAT is written) and bits 0–3. */
  mirroring: boolean;
  activeFat: number;
  /** FAT32 only: BPB_RootClus, BPB_FSInfo, BPB_BkBootSec (0 when absent). */
  rootCluster: number;
  fsInfoSector: number;
  backupBootSector: number;
}

const STRUCTURE = 'FAT boot sector';

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** BPB_Media: 0xF0 or 0xF8–0xFF (fatgen103, "BPB_Media"). */
const validMedia = (m: number): boolean => m === 0xf0 || m >= 0xf8;

/**
 * Parses a FAT boot sector (its first 512 bytes at least) and computes the volume's layout.
 * The FAT type comes from the cluster count alone, as fatgen103 requires ("FAT Type
 * Determination": < 4085 clusters FAT12, < 65525 FAT16, else FAT32), never from
 * BS_FilSysType, which is only a label.
 *
 * Sources: Microsoft, "FAT: General Overview of On-Disk Format" (fatgen103) 1.03, "Boot Sector
 * and BPB", "FAT Data Structure", "FAT Type Determination"; dosfstools src/boot.c (read_boot);
 * Linux fs/fat/inode.c (fat_read_bpb).
 */
export function parseBootSector(bytes: Uint8Array, offset = 0): BootSector {
  const r = new FieldReader<FatReason>(bytes, STRUCTURE, offset).need(BOOT_SECTOR_SIZE);

  // BS_jmpBoot is EB xx 90 or E9 xx xx; the byte after the short jump is not always 0x90.
  const jmp = r.u8(0x00);
  if ((jmp !== 0xeb && jmp !== 0xe9) || r.u16le(0x1fe) !== 0xaa55) {
    throw r.corrupt('no boot sector jump instruction or 0x55AA signature', 0x1fe, 'bad-signature');
  }
  const BPB_BytsPerSec = r.u16le(0x0b);
  if (BPB_BytsPerSec < 512 || BPB_BytsPerSec > 4096 || !isPowerOfTwo(BPB_BytsPerSec)) {
    throw r.corrupt(
      `bytes per sector ${BPB_BytsPerSec} is not 512, 1024, 2048 or 4096`,
      0x0b,
      'bad-sector-size',
    );
  }
  const BPB_SecPerClus = r.u8(0x0d);
  if (!isPowerOfTwo(BPB_SecPerClus)) {
    throw r.corrupt(
      `sectors per cluster ${BPB_SecPerClus} is not a power of two`,
      0x0d,
      'bad-cluster-size',
    );
  }
  const BPB_RsvdSecCnt = r.u16le(0x0e);
  if (BPB_RsvdSecCnt === 0)
    throw r.corrupt('no reserved sectors (the boot sector is one)', 0x0e, 'bad-reserved');
  const BPB_NumFATs = r.u8(0x10);
  if (BPB_NumFATs === 0) throw r.corrupt('no FAT', 0x10, 'bad-fat-count');
  const BPB_RootEntCnt = r.u16le(0x11);
  const BPB_TotSec16 = r.u16le(0x13);
  const BPB_Media = r.u8(0x15);
  if (!validMedia(BPB_Media)) {
    throw r.corrupt(
      `media byte 0x${BPB_Media.toString(16)} is not 0xF0 or 0xF8–0xFF`,
      0x15,
      'bad-media',
    );
  }
  const BPB_FATSz16 = r.u16le(0x16);
  const BPB_TotSec32 = r.u32le(0x20);
  // The FAT32 extension of the BPB; on FAT12/16 these bytes are BS_DrvNum, BS_VolID … instead.
  const BPB_FATSz32 = r.u32le(0x24);

  const fatSectors = BPB_FATSz16 !== 0 ? BPB_FATSz16 : BPB_FATSz32;
  if (fatSectors === 0) throw r.corrupt('the FAT size is 0', 0x16, 'bad-fat-size');
  const totalSectors = BPB_TotSec16 !== 0 ? BPB_TotSec16 : BPB_TotSec32;
  const rootDirSectors = Math.ceil((BPB_RootEntCnt * 32) / BPB_BytsPerSec);
  // Every term is below 2^32 × 255 sectors: no overflow of a safe integer.
  const firstDataSector = BPB_RsvdSecCnt + BPB_NumFATs * fatSectors + rootDirSectors;
  if (totalSectors === 0 || firstDataSector >= totalSectors) {
    throw r.corrupt(
      `${totalSectors} sectors cannot hold the ${firstDataSector} sectors of boot area, FATs and root directory`,
      BPB_TotSec16 !== 0 ? 0x13 : 0x20,
      'bad-total-sectors',
    );
  }
  const clusterCount = Math.floor((totalSectors - firstDataSector) / BPB_SecPerClus);
  if (clusterCount < 1)
    throw r.corrupt('the data region holds no cluster', 0x20, 'bad-total-sectors');
  // fatgen103 "FAT Type Determination": the count alone decides, with these exact limits.
  const fatType: FatType = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  // FAT32 entries 0x0FFFFFF7 and up are bad/EOC marks: cluster numbers must stay below.
  if (clusterCount > 0x0ffffff5) {
    throw r.corrupt(
      `${clusterCount} clusters is more than FAT32 can number`,
      0x20,
      'bad-total-sectors',
    );
  }

  // The BPB layout (FAT32 extension or not) must agree with the count. Linux decides FAT32 by
  // BPB_FATSz16 = 0 instead, so mkfs.fat -F 32 on a small volume makes a "FAT32" that Windows
  // and this spec read as FAT16: the two readers disagree, so refuse to guess.
  const fat32Layout = BPB_FATSz16 === 0;
  if (fat32Layout !== (fatType === 32)) {
    throw new UnsupportedError(
      `${clusterCount} clusters make this FAT${fatType} by the specification, but the boot sector is laid out for ${fat32Layout ? 'FAT32' : 'FAT12/16'}`,
      { structure: STRUCTURE, offset: offset + 0x16, reason: 'fat-type-mismatch' },
    );
  }
  const fatBytes = fatSectors * BPB_BytsPerSec;
  const needed =
    fatType === 12 ? Math.ceil(((clusterCount + 2) * 3) / 2) : (clusterCount + 2) * (fatType / 8);
  if (fatBytes < needed) {
    throw r.corrupt(
      `a ${fatBytes}-byte FAT cannot hold the entries of ${clusterCount} clusters (${needed} bytes)`,
      fat32Layout ? 0x24 : 0x16,
      'bad-fat-size',
    );
  }

  let rootCluster = 0;
  let fsInfoSector = 0;
  let backupBootSector = 0;
  let mirroring = true;
  let activeFat = 0;
  let ext = 0x24; // the extended boot record: BS_DrvNum, BS_Reserved1, BS_BootSig, BS_VolID …
  if (fatType === 32) {
    if (BPB_RootEntCnt !== 0)
      throw r.corrupt('FAT32 with a fixed root directory', 0x11, 'bad-root-entries');
    const BPB_ExtFlags = r.u16le(0x28);
    mirroring = (BPB_ExtFlags & 0x80) === 0;
    activeFat = BPB_ExtFlags & 0x0f;
    const BPB_FSVer = r.u16le(0x2a);
    if (BPB_FSVer !== 0) {
      throw new UnsupportedError(`FAT32 version ${BPB_FSVer >> 8}.${BPB_FSVer & 0xff}`, {
        structure: STRUCTURE,
        offset: offset + 0x2a,
        reason: 'version',
      });
    }
    const BPB_RootClus = r.u32le(0x2c);
    if (BPB_RootClus < 2 || BPB_RootClus > clusterCount + 1) {
      throw r.corrupt(
        `root directory cluster ${BPB_RootClus} is not a data cluster`,
        0x2c,
        'bad-root-cluster',
      );
    }
    rootCluster = BPB_RootClus;
    // 0 and 0xFFFF mean "none". Both live in the reserved region, which is kept whole.
    const BPB_FSInfo = r.u16le(0x30);
    const BPB_BkBootSec = r.u16le(0x32);
    for (const [value, at, what] of [
      [BPB_FSInfo, 0x30, 'FSInfo'],
      [BPB_BkBootSec, 0x32, 'backup boot'],
    ] as const) {
      if (value !== 0 && value !== 0xffff && value >= BPB_RsvdSecCnt) {
        throw r.corrupt(
          `${what} sector ${value} is outside the ${BPB_RsvdSecCnt} reserved sectors`,
          at,
          'out-of-range',
        );
      }
    }
    fsInfoSector = BPB_FSInfo === 0xffff ? 0 : BPB_FSInfo;
    backupBootSector = BPB_BkBootSec === 0xffff ? 0 : BPB_BkBootSec;
    ext = 0x40;
  } else if (BPB_RootEntCnt === 0) {
    throw r.corrupt(`FAT${fatType} without root directory entries`, 0x11, 'bad-root-entries');
  }

  // BS_Reserved1 (the Windows NT flags byte) and the label exist only with the extended boot
  // signature 0x28/0x29: before DOS 4.0 these bytes are boot code.
  const BS_BootSig = r.u8(ext + 2);
  const extended = BS_BootSig === 0x28 || BS_BootSig === 0x29;
  const BS_Reserved1 = extended ? r.u8(ext + 1) : 0;
  let label = '';
  let volumeId: number | undefined;
  if (BS_BootSig === 0x29) {
    volumeId = r.u32le(ext + 3);
    label = r.ascii(ext + 7, 11).replace(/[\s\0]+$/, '');
    if (label === 'NO NAME') label = '';
  }

  return {
    fatType,
    bytesPerSector: BPB_BytsPerSec,
    sectorsPerCluster: BPB_SecPerClus,
    clusterSize: BPB_BytsPerSec * BPB_SecPerClus,
    reservedSectors: BPB_RsvdSecCnt,
    fatCount: BPB_NumFATs,
    fatSectors,
    rootEntries: BPB_RootEntCnt,
    rootDirSectors,
    totalSectors,
    media: BPB_Media,
    firstDataSector,
    clusterCount,
    dirtyFlag: (BS_Reserved1 & 0x01) !== 0,
    label,
    volumeId,
    mirroring,
    activeFat,
    rootCluster,
    fsInfoSector,
    backupBootSector,
  };
}

/**
 * The used-map granularity: the largest power of two dividing both the cluster size and the
 * data region's start. Everything before the data region is kept, so only the cluster grid has
 * to line up; with the data region aligned (mkfs.fat does it) this is the cluster size.
 */
export function mapBlockSize(bs: BootSector): number {
  const start = bs.firstDataSector * bs.bytesPerSector;
  let size = bs.clusterSize;
  while (start % size !== 0) size /= 2;
  return size;
}

/** The error for a source shorter than the volume the boot sector describes. */
export function truncatedError(bs: BootSector, sourceSize: number, offset: number): CorruptError {
  return new CorruptError(
    `the volume has ${bs.totalSectors} sectors of ${bs.bytesPerSector} bytes but the source only ${sourceSize} bytes`,
    { structure: STRUCTURE, offset, reason: 'truncated' },
  );
}

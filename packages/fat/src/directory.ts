import { FieldReader } from '@diskube/core';
import type { FatReason } from './reasons.js';

/** One 32-byte short directory entry that names a file or directory. */
export interface DirEntry {
  /** 8.3 name as stored, `NAME.EXT` (long names are not needed for a cross-check). */
  name: string;
  directory: boolean;
  /** First cluster (DIR_FstClusHI only on FAT32), 0 for an empty file. */
  firstCluster: number;
  size: number;
  /** Byte offset of the entry in the source. */
  offset: number;
}

const ATTR_VOLUME_ID = 0x08;
const ATTR_DIRECTORY = 0x10;
const ATTR_LONG_NAME = 0x0f;

/**
 * The files and subdirectories of one directory's bytes, skipping free (0xE5), long-name,
 * volume-label, `.` and `..` entries; stops at the end marker (a first byte of 0x00).
 * `done` is true when the end marker was seen (no later cluster of the directory is read).
 *
 * Sources: fatgen103 1.03, "FAT Directory Structure" (DIR_Name, DIR_Attr, DIR_FstClusHI at
 * 0x14, DIR_FstClusLO at 0x1A, DIR_FileSize at 0x1C; 0xE5 and 0x00 in DIR_Name[0]).
 */
export function parseDirectory(
  bytes: Uint8Array,
  fat32: boolean,
  offset = 0,
): { entries: DirEntry[]; done: boolean } {
  const r = new FieldReader<FatReason>(bytes, 'FAT directory', offset);
  const entries: DirEntry[] = [];
  for (let at = 0; at + 32 <= r.length; at += 32) {
    const first = r.u8(at);
    if (first === 0x00) return { entries, done: true };
    const DIR_Attr = r.u8(at + 0x0b);
    if (first === 0xe5 || (DIR_Attr & ATTR_LONG_NAME) === ATTR_LONG_NAME) continue;
    if (DIR_Attr & ATTR_VOLUME_ID) continue;
    const base = r.ascii(at, 8).trimEnd();
    const ext = r.ascii(at + 8, 3).trimEnd();
    if (base === '.' || base === '..') continue;
    const DIR_FstClusHI = fat32 ? r.u16le(at + 0x14) : 0;
    const DIR_FstClusLO = r.u16le(at + 0x1a);
    entries.push({
      // 0x05 in DIR_Name[0] stands for a real 0xE5.
      name: (first === 0x05 ? `\u00e5${base.slice(1)}` : base) + (ext ? `.${ext}` : ''),
      directory: (DIR_Attr & ATTR_DIRECTORY) !== 0,
      firstCluster: DIR_FstClusHI * 0x10000 + DIR_FstClusLO,
      size: r.u32le(at + 0x1c),
      offset: offset + at,
    });
  }
  return { entries, done: false };
}

import { FieldReader, UnsupportedError } from '@diskube/core';
import { lvmCrc } from './crc.js';
import type { LvmReason } from './reasons.js';

// Sources: LVM2 lib/label/label.h (struct label_header), lib/format_text/layout.h (struct
// pv_header, struct disk_locn), lib/label/label.c (label_read: the label may be in any of the
// first four 512-byte sectors, and sector_xl must name the sector it is in) and
// lib/format_text/text_label.c (_text_read: data areas, then metadata areas, each list ended by
// an all-zero entry). All fields are little-endian.

/** The label is searched for in sectors 0 to 3 (LABEL_SCAN_SECTORS). */
export const LABEL_SCAN_SECTORS = 4;
export const LABEL_SECTOR_SIZE = 512;
const LABEL_ID = 'LABELONE';
const LABEL_TYPE = 'LVM2 001';
const STRUCTURE = 'LVM2 label';
/** 32 bytes of label_header, then the pv_header: a 32-byte uuid and device_size_xl. */
const LABEL_HEADER_SIZE = 0x20;
const PV_HEADER_FIXED = 0x28;

export interface DiskLocation {
  /** Byte offset from the start of the PV. */
  offset: number;
  /** Bytes; 0 for the data area means "to the end of the device". */
  size: number;
}

export interface PvLabel {
  /** Sector (0–3) the label was found in. */
  sector: number;
  /** The PV uuid as LVM prints it (6-4-4-4-4-4-6). */
  uuid: string;
  /** device_size_xl: the PV's size in bytes when it was created. */
  deviceSize: number;
  dataAreas: DiskLocation[];
  metadataAreas: DiskLocation[];
}

/** The 32-character uuid in LVM's grouping, as `pvs -o pv_uuid` and the metadata text write it. */
export function formatLvmUuid(raw: string): string {
  const groups = [6, 4, 4, 4, 4, 4, 6];
  const parts: string[] = [];
  let at = 0;
  for (const length of groups) {
    parts.push(raw.slice(at, at + length));
    at += length;
  }
  return parts.join('-');
}

/** True when the 512 bytes at `sector` start with `LABELONE` (cheap, never throws). */
export function hasLabelId(bytes: Uint8Array, sector: number): boolean {
  const at = sector * LABEL_SECTOR_SIZE;
  if (bytes.length < at + LABEL_SECTOR_SIZE) return false;
  for (let i = 0; i < LABEL_ID.length; i++) {
    if (bytes[at + i] !== LABEL_ID.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Parses the label and PV header in the first four sectors (`bytes` holds them, from byte 0 of
 * the PV). Returns null when no sector starts with `LABELONE`.
 */
export function parseLabel(bytes: Uint8Array, pvSize: number): PvLabel | null {
  let sector = -1;
  for (let s = 0; s < LABEL_SCAN_SECTORS; s++) {
    if (hasLabelId(bytes, s)) {
      sector = s;
      break;
    }
  }
  if (sector < 0) return null;
  const r = new FieldReader<LvmReason>(
    bytes.subarray(sector * LABEL_SECTOR_SIZE, (sector + 1) * LABEL_SECTOR_SIZE),
    STRUCTURE,
    sector * LABEL_SECTOR_SIZE,
  ).need(LABEL_SECTOR_SIZE);
  const sector_xl = r.u64le(0x08, 'sector_xl');
  if (sector_xl !== sector) {
    throw r.corrupt(
      `label in sector ${sector} says it is in sector ${sector_xl}`,
      0x08,
      'bad-label-sector',
    );
  }
  // crc_xl covers the sector from offset_xl (0x14) to its end.
  const crc_xl = r.u32le(0x10);
  const actual = lvmCrc(r.slice(0x14, LABEL_SECTOR_SIZE - 0x14));
  if (crc_xl !== actual) {
    throw r.corrupt(
      `label checksum 0x${crc_xl.toString(16)} does not match 0x${actual.toString(16)}`,
      0x10,
      'checksum',
    );
  }
  const offset_xl = r.u32le(0x14);
  const type = r.ascii(0x18, 8);
  if (type !== LABEL_TYPE) {
    throw new UnsupportedError(`label type '${type}' is not LVM2 001`, {
      structure: STRUCTURE,
      offset: r.offset + 0x18,
      reason: 'unknown-format' satisfies LvmReason,
    });
  }
  if (offset_xl < LABEL_HEADER_SIZE || offset_xl + PV_HEADER_FIXED > LABEL_SECTOR_SIZE) {
    throw r.corrupt(
      `PV header offset ${offset_xl} is outside the label sector`,
      0x14,
      'bad-label-offset',
    );
  }
  const pv = r.sub(offset_xl, LABEL_SECTOR_SIZE - offset_xl, 'LVM2 PV header');
  const uuid = formatLvmUuid(pv.ascii(0x00, 32));
  const deviceSize = pv.u64le(0x20, 'device_size_xl');
  // Two lists of 16-byte disk_locn entries, each ended by an all-zero one; the sector bounds
  // them (at most 27 entries fit).
  let at = PV_HEADER_FIXED;
  const readList = (what: string): DiskLocation[] => {
    const list: DiskLocation[] = [];
    for (;;) {
      if (!pv.has(at, 16)) {
        throw pv.corrupt(
          `${what} list is not terminated inside the label sector`,
          at,
          'bad-locations',
        );
      }
      const offset = pv.u64le(at, 'disk_locn.offset');
      const size = pv.u64le(at + 8, 'disk_locn.size');
      at += 16;
      if (offset === 0) return list;
      if (offset >= pvSize || offset + size > pvSize) {
        throw pv.corrupt(
          `${what} [${offset}, +${size}) lies outside the ${pvSize}-byte PV`,
          at - 16,
          'bad-locations',
        );
      }
      list.push({ offset, size });
    }
  };
  const dataAreas = readList('data area');
  const metadataAreas = readList('metadata area');
  if (dataAreas.length !== 1) {
    throw pv.corrupt(
      `${dataAreas.length} data areas (LVM2 writes exactly one)`,
      PV_HEADER_FIXED,
      'bad-locations',
    );
  }
  return { sector, uuid, deviceSize, dataAreas, metadataAreas };
}

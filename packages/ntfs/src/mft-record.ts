import { CorruptError, FieldReader } from '@diskube/core';
import { fileReference } from './file-reference.js';
import type { NtfsReason } from './reasons.js';

/** Update sequence stride: always 512 bytes, whatever the sector size (ntfs-3g NTFS_BLOCK_SIZE). */
export const FIXUP_STRIDE = 512;

/**
 * Apply the update sequence ("multi-sector transfer") fixups of a protected record in place:
 * FILE records, INDX index buffers and RSTR log restart pages.
 *
 * The last two bytes of every 512-byte stride were replaced on write by the update sequence
 * number (USN) kept at `usa_ofs`; the original bytes are saved in the array after it. A stride
 * whose last two bytes do not equal the USN was not fully written (a torn write), so the record
 * cannot be trusted: `CorruptError` with reason `fixup`.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (NTFS_RECORD), libntfs-3g/mst.c
 * (ntfs_mst_post_read_fixup); libyal libfsntfs "Fix-up values".
 */
export function applyFixups(record: Uint8Array, structure: string, at: number): void {
  const f = new FieldReader<NtfsReason>(record, structure, at).need(8);
  const usa_ofs = f.u16le(4);
  const usa_count = f.u16le(6);
  const strides = record.length / FIXUP_STRIDE;
  if (
    !Number.isInteger(strides) ||
    usa_count !== strides + 1 ||
    (usa_ofs & 1) !== 0 ||
    usa_ofs < 8 ||
    usa_ofs + usa_count * 2 > FIXUP_STRIDE - 2
  ) {
    throw new CorruptError(
      `update sequence array (offset ${usa_ofs}, count ${usa_count}) does not fit a ${record.length}-byte record`,
      { structure, offset: at + 4, reason: 'fixup' },
    );
  }
  const usn = f.u16le(usa_ofs);
  for (let i = 1; i < usa_count; i++) {
    const end = i * FIXUP_STRIDE - 2;
    if (record[end] !== (usn & 0xff) || record[end + 1] !== usn >> 8) {
      throw new CorruptError(`update sequence mismatch in stride ${i - 1} (torn write)`, {
        structure,
        offset: at + end,
        reason: 'fixup',
      });
    }
    record[end] = record[usa_ofs + i * 2]!;
    record[end + 1] = record[usa_ofs + i * 2 + 1]!;
  }
}

/** MFT_RECORD flags. */
export const MFT_RECORD_IN_USE = 0x0001;
export const MFT_RECORD_IS_DIRECTORY = 0x0002;

export interface MftRecordHeader {
  /** Record number this header was read for (the caller knows it; stored for messages). */
  recordNumber: number;
  sequenceNumber: number;
  inUse: boolean;
  isDirectory: boolean;
  /** Offset of the first attribute. */
  attrsOffset: number;
  /** Bytes used by the header and attributes, ≤ the record size. */
  bytesInUse: number;
  /** 0 for a base record; for an extension record, the record number of its base record. */
  baseRecord: number;
}

/**
 * Apply fixups to one MFT record (in place) and parse its header.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (MFT_RECORD); libyal libfsntfs "MFT entry header".
 *
 * | off  | size | field             |
 * | 0x00 | 4    | magic "FILE"      |
 * | 0x04 | 2    | usa_ofs           |
 * | 0x06 | 2    | usa_count         |
 * | 0x10 | 2    | sequence_number   |
 * | 0x14 | 2    | attrs_offset      |
 * | 0x16 | 2    | flags             |
 * | 0x18 | 4    | bytes_in_use      |
 * | 0x1c | 4    | bytes_allocated   |
 * | 0x20 | 8    | base_mft_record   |
 */
export function parseMftRecord(
  record: Uint8Array,
  recordNumber: number,
  at: number,
): MftRecordHeader {
  const s = `MFT record ${recordNumber}`;
  const f = new FieldReader<NtfsReason>(record, s, at).need(0x30);
  const m = f.ascii(0, 4);
  if (m !== 'FILE') {
    // "BAAD" is what NTFS writes over a record whose fixups failed on a previous read.
    throw new CorruptError(`bad MFT record signature ${JSON.stringify(m)}`, {
      structure: s,
      offset: at,
      reason: m === 'BAAD' ? 'fixup' : 'bad-magic',
    });
  }
  applyFixups(record, s, at);
  const sequence_number = f.u16le(0x10);
  const attrs_offset = f.u16le(0x14);
  const flags = f.u16le(0x16);
  const bytes_in_use = f.u32le(0x18);
  const bytes_allocated = f.u32le(0x1c);
  const base_mft_record = fileReference(f, 0x20);
  if (bytes_allocated !== record.length) {
    throw new CorruptError(
      `bytes_allocated ${bytes_allocated} differs from the record size ${record.length}`,
      {
        structure: s,
        offset: at + 0x1c,
        reason: 'bad-record-size',
      },
    );
  }
  if (bytes_in_use > record.length || bytes_in_use < attrs_offset + 4) {
    throw new CorruptError(`bytes_in_use ${bytes_in_use} is out of range`, {
      structure: s,
      offset: at + 0x18,
      reason: 'length-mismatch',
    });
  }
  if (attrs_offset < 0x18 || (attrs_offset & 7) !== 0) {
    throw new CorruptError(`attrs_offset ${attrs_offset} is out of range`, {
      structure: s,
      offset: at + 0x14,
      reason: 'bad-offset',
    });
  }
  return {
    recordNumber,
    sequenceNumber: sequence_number,
    inUse: (flags & MFT_RECORD_IN_USE) !== 0,
    isDirectory: (flags & MFT_RECORD_IS_DIRECTORY) !== 0,
    attrsOffset: attrs_offset,
    bytesInUse: bytes_in_use,
    baseRecord: base_mft_record.record,
  };
}

import { CorruptError, FieldReader } from '@diskube/core';
import { fileReference } from './file-reference.js';
import type { NtfsReason } from './reasons.js';

export interface AttributeListEntry {
  type: number;
  name: string;
  /** First VCN of the extent held by `record` (0 for resident attributes). */
  lowestVcn: number;
  /** MFT record that holds this attribute extent (the base record or an extension record). */
  record: number;
  sequence: number;
}

/**
 * Largest attribute list we read. Each entry is at least 32 bytes, so 4 MiB is over 130,000
 * extents — far beyond any real file — while denying hostile sizes that would allocate without bound.
 */
export const MAX_ATTRIBUTE_LIST_SIZE = 4 * 1024 * 1024;

/**
 * Parse the value of an $ATTRIBUTE_LIST attribute: one entry per attribute extent of a file whose
 * attributes do not fit its base record.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (ATTR_LIST_ENTRY); libyal libfsntfs
 * "The attribute list attribute".
 *
 * | off  | size | field         |
 * | 0x00 | 4    | type          |
 * | 0x04 | 2    | length        |
 * | 0x06 | 1    | name_length   |
 * | 0x07 | 1    | name_offset   |
 * | 0x08 | 8    | lowest_vcn    |
 * | 0x10 | 8    | mft_reference |
 * | 0x18 | 2    | instance      |
 * | 0x1a | 2n   | name          |
 */
export function parseAttributeList(
  value: Uint8Array,
  at: number,
  baseRecord: number,
): AttributeListEntry[] {
  const s = `attribute list of MFT record ${baseRecord}`;
  const f = new FieldReader<NtfsReason>(value, s, at);
  const out: AttributeListEntry[] = [];
  let pos = 0;
  // Each entry advances pos by at least 0x1a bytes, so the loop is bounded by value.length / 26.
  while (pos < value.length) {
    // Some writers pad the end of the list with zeros; a zero type ends it.
    if (pos + 4 <= value.length && f.u32le(pos) === 0) break;
    if (pos + 0x1a > value.length) {
      throw new CorruptError('attribute list entry is truncated', {
        structure: s,
        offset: at + pos,
        reason: 'truncated',
      });
    }
    const type = f.u32le(pos);
    const length = f.u16le(pos + 4);
    const name_length = f.u8(pos + 6);
    const name_offset = f.u8(pos + 7);
    if (length < 0x1a || pos + length > value.length) {
      throw new CorruptError(`attribute list entry length ${length} is invalid`, {
        structure: s,
        offset: at + pos,
        reason: 'length-mismatch',
      });
    }
    if (name_length > 0 && name_offset + name_length * 2 > length) {
      throw new CorruptError('attribute list entry name lies outside the entry', {
        structure: s,
        offset: at + pos,
        reason: 'bad-offset',
      });
    }
    const lowest_vcn = f.i64le(pos + 8);
    if (lowest_vcn < 0) {
      throw new CorruptError('negative lowest_vcn', {
        structure: s,
        offset: at + pos + 8,
        reason: 'bad-vcn',
      });
    }
    const ref = fileReference(f, pos + 0x10);
    const name = name_length > 0 ? f.utf16le(pos + name_offset, name_length) : '';
    out.push({ type, name, lowestVcn: lowest_vcn, record: ref.record, sequence: ref.sequence });
    pos += length;
  }
  return out;
}

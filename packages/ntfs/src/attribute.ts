import { CorruptError, FieldReader } from '@diskube/core';
import type { MftRecordHeader } from './mft-record.js';
import type { NtfsReason } from './reasons.js';

/** Attribute type codes we use (ntfs-3g layout.h ATTR_TYPES). */
export const AT_STANDARD_INFORMATION = 0x10;
export const AT_ATTRIBUTE_LIST = 0x20;
export const AT_FILE_NAME = 0x30;
export const AT_VOLUME_NAME = 0x60;
export const AT_VOLUME_INFORMATION = 0x70;
export const AT_DATA = 0x80;
export const AT_INDEX_ROOT = 0x90;
export const AT_INDEX_ALLOCATION = 0xa0;
export const AT_BITMAP = 0xb0;
const AT_END = 0xffffffff;

/** ATTR_FLAGS. */
export const ATTR_COMPRESSION_MASK = 0x00ff;
export const ATTR_IS_ENCRYPTED = 0x4000;
export const ATTR_IS_SPARSE = 0x8000;

interface AttributeCommon {
  type: number;
  /** Attribute name ('' when unnamed), e.g. `$I30`, `$Bad`. */
  name: string;
  flags: number;
  /** Byte offset of the attribute record in the source, for error messages. */
  offset: number;
  /** The MFT record that holds this attribute record. */
  recordNumber: number;
}

export interface ResidentAttribute extends AttributeCommon {
  resident: true;
  /** The value bytes (a view into the record buffer). */
  value: Uint8Array;
}

export interface NonResidentAttribute extends AttributeCommon {
  resident: false;
  lowestVcn: number;
  /** −1 for an attribute without clusters. */
  highestVcn: number;
  /** The sizes are only valid in the extent with `lowestVcn === 0`. */
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
  compressionUnit: number;
  /** The encoded runlist ("mapping pairs"), a view into the record buffer. */
  mappingPairs: Uint8Array;
  /** Source offset of `mappingPairs`, for error messages. */
  mappingPairsOffset: number;
}

export type Attribute = ResidentAttribute | NonResidentAttribute;

/**
 * Parse the attribute records of a fixed-up MFT record, stopping at the 0xFFFFFFFF end marker.
 * Every length and offset is checked against the record's `bytes_in_use`.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (ATTR_RECORD); libyal libfsntfs "MFT attribute".
 *
 * | off  | size | field (all)            | resident          | non-resident                |
 * | 0x00 | 4    | type                   |                   |                             |
 * | 0x04 | 4    | length                 |                   |                             |
 * | 0x08 | 1    | non_resident           |                   |                             |
 * | 0x09 | 1    | name_length (UTF-16)   |                   |                             |
 * | 0x0a | 2    | name_offset            |                   |                             |
 * | 0x0c | 2    | flags                  |                   |                             |
 * | 0x10 |      |                        | value_length (4)  | lowest_vcn (8)              |
 * | 0x14 |      |                        | value_offset (2)  |                             |
 * | 0x18 |      |                        |                   | highest_vcn (8)             |
 * | 0x20 |      |                        |                   | mapping_pairs_offset (2)    |
 * | 0x22 |      |                        |                   | compression_unit (1)        |
 * | 0x28 |      |                        |                   | allocated_size (8)          |
 * | 0x30 |      |                        |                   | data_size (8)               |
 * | 0x38 |      |                        |                   | initialized_size (8)        |
 */
export function parseAttributes(
  record: Uint8Array,
  header: MftRecordHeader,
  at: number,
): Attribute[] {
  const out: Attribute[] = [];
  const end = header.bytesInUse;
  let pos = header.attrsOffset;
  const s = `attribute in MFT record ${header.recordNumber}`;
  const rf = new FieldReader<NtfsReason>(record, s, at);
  // Each attribute record is at least 24 bytes, so this loop runs at most end / 24 times.
  for (;;) {
    if (pos + 4 > end) {
      throw new CorruptError('attributes run past bytes_in_use without an end marker', {
        structure: s,
        offset: at + pos,
        reason: 'truncated',
      });
    }
    const type = rf.u32le(pos);
    if (type === AT_END) break;
    const length = pos + 8 <= end ? rf.u32le(pos + 4) : 0;
    if (length < 0x18 || (length & 7) !== 0 || pos + length > end) {
      throw new CorruptError(`attribute 0x${type.toString(16)} has invalid length ${length}`, {
        structure: s,
        offset: at + pos,
        reason: 'length-mismatch',
      });
    }
    const a = record.subarray(pos, pos + length);
    const aAt = at + pos;
    const af = new FieldReader<NtfsReason>(a, s, aAt);
    const non_resident = af.u8(0x08);
    const name_length = af.u8(0x09);
    const name_offset = af.u16le(0x0a);
    const flags = af.u16le(0x0c);
    if (name_length > 0 && name_offset + name_length * 2 > length) {
      throw new CorruptError('attribute name lies outside the attribute', {
        structure: s,
        offset: aAt + 0x0a,
        reason: 'bad-offset',
      });
    }
    const name = name_length > 0 ? af.utf16le(name_offset, name_length) : '';
    const recordNumber = header.recordNumber;
    if (non_resident === 0) {
      const value_length = af.u32le(0x10);
      const value_offset = af.u16le(0x14);
      if (value_offset + value_length > length) {
        throw new CorruptError('resident value lies outside the attribute', {
          structure: s,
          offset: aAt + 0x10,
          reason: 'truncated',
        });
      }
      // Object literals, not `{ ...common }`: spreading is ~10x slower, and the crossCheck walk
      // parses every attribute of every record.
      out.push({
        type,
        name,
        flags,
        offset: aAt,
        recordNumber,
        resident: true,
        value: a.subarray(value_offset, value_offset + value_length),
      });
    } else if (non_resident === 1) {
      af.need(0x40);
      const lowest_vcn = af.i64le(0x10);
      const highest_vcn = af.i64le(0x18);
      const mapping_pairs_offset = af.u16le(0x20);
      const compression_unit = af.u8(0x22);
      const allocated_size = af.i64le(0x28);
      const data_size = af.i64le(0x30);
      const initialized_size = af.i64le(0x38);
      if (lowest_vcn < 0 || highest_vcn < lowest_vcn - 1) {
        throw new CorruptError(`VCN range ${lowest_vcn}..${highest_vcn} is invalid`, {
          structure: s,
          offset: aAt + 0x10,
          reason: 'bad-vcn',
        });
      }
      if (mapping_pairs_offset < 0x40 || mapping_pairs_offset > length) {
        throw new CorruptError(`mapping pairs offset ${mapping_pairs_offset} is out of range`, {
          structure: s,
          offset: aAt + 0x20,
          reason: 'bad-offset',
        });
      }
      if (
        lowest_vcn === 0 &&
        (allocated_size < 0 ||
          data_size < 0 ||
          initialized_size < 0 ||
          data_size > allocated_size ||
          initialized_size > data_size)
      ) {
        throw new CorruptError('attribute sizes are inconsistent', {
          structure: s,
          offset: aAt + 0x28,
          reason: 'bad-size',
        });
      }
      out.push({
        type,
        name,
        flags,
        offset: aAt,
        recordNumber,
        resident: false,
        lowestVcn: lowest_vcn,
        highestVcn: highest_vcn,
        allocatedSize: allocated_size,
        dataSize: data_size,
        initializedSize: initialized_size,
        compressionUnit: compression_unit,
        mappingPairs: a.subarray(mapping_pairs_offset, length),
        mappingPairsOffset: aAt + mapping_pairs_offset,
      });
    } else {
      throw new CorruptError(`non_resident byte is ${non_resident}`, {
        structure: s,
        offset: aAt + 0x08,
        reason: 'bad-flag',
      });
    }
    pos += length;
  }
  return out;
}

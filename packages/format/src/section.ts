import { FieldReader } from '@diskube/core';
import { FieldWriter } from './bytes.js';
import { crc32c } from './crc32c.js';
import type { FormatReason } from './reasons.js';

// Sources: SPEC.md §5 "Sections". A section is a 16-byte header, a payload and a CRC32C.

export const SECTION_HEADER_LENGTH = 16;
export const SECTION_OVERHEAD = SECTION_HEADER_LENGTH + 4;

/** Sections in file order; the footer's section table uses the same order. */
export const SECTION_TAGS = ['USED', 'CHNG', 'FREE', 'ZERO', 'DGST', 'FIDX', 'TAIL'] as const;
export type SectionTag = (typeof SECTION_TAGS)[number];
/**
 * Every section tag: those of the footer's table, and REPT (format 2.2), which has no entry there
 * and sits right after ZERO when the header's `REPEATS` flag is set.
 */
export type AnySectionTag = SectionTag | 'REPT';

export const SECTION_NAMES: Record<AnySectionTag, string> = {
  USED: 'used-block bitmap',
  CHNG: 'changed-block bitmap',
  FREE: 'newly-unused bitmap',
  ZERO: 'zero-block bitmap',
  REPT: 'repeated-block list',
  DGST: 'digest table',
  FIDX: 'frame index',
  TAIL: 'tail section',
};

export const ENCODING_RAW = 0;
export const ENCODING_RLE = 1;

function tagCode(tag: AnySectionTag): number {
  return (
    tag.charCodeAt(0) |
    (tag.charCodeAt(1) << 8) |
    (tag.charCodeAt(2) << 16) |
    (tag.charCodeAt(3) << 24)
  );
}

/** Whether a section header starts with `tag`. */
export function parseSectionTag(head: Uint8Array, tag: AnySectionTag): boolean {
  return (head[0]! | (head[1]! << 8) | (head[2]! << 16) | (head[3]! << 24)) === tagCode(tag);
}

/** The 16-byte section header (tag, encoding, payload length). */
export function encodeSectionHeader(
  tag: AnySectionTag,
  encoding: number,
  payloadLength: number,
): Uint8Array {
  const w = new FieldWriter(SECTION_HEADER_LENGTH);
  w.u32(0, tagCode(tag));
  w.u32(4, encoding);
  w.u64(8, payloadLength);
  return w.bytes;
}

export interface ParsedSection {
  encoding: number;
  payload: Uint8Array;
}

/**
 * Check a whole section read from `offset` (its length taken from the footer) and return its
 * payload. Errors name the section and the file offset of the bad field.
 */
export function parseSection(bytes: Uint8Array, tag: AnySectionTag, offset: number): ParsedSection {
  const r = new FieldReader<FormatReason>(bytes, SECTION_NAMES[tag], offset);
  if (r.u32le(0) !== tagCode(tag))
    throw r.corrupt(`${SECTION_NAMES[tag]} has a bad tag`, 0, 'bad-magic');
  const encoding = r.u32le(4);
  const payloadLength = r.u64le(8);
  if (payloadLength + SECTION_OVERHEAD !== bytes.length) {
    throw r.corrupt(`${SECTION_NAMES[tag]} length disagrees with the footer`, 8, 'length-mismatch');
  }
  const stored = r.u32le(SECTION_HEADER_LENGTH + payloadLength);
  if (crc32c(bytes.subarray(0, SECTION_HEADER_LENGTH + payloadLength)) !== stored) {
    throw r.corrupt(
      `${SECTION_NAMES[tag]} checksum mismatch`,
      SECTION_HEADER_LENGTH + payloadLength,
      'checksum',
    );
  }
  return { encoding, payload: r.slice(SECTION_HEADER_LENGTH, payloadLength) };
}

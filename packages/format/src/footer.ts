import { FieldReader } from '@diskube/core';
import { FieldWriter } from './bytes.js';
import { crc32c } from './crc32c.js';
import type { FormatReason } from './reasons.js';
import { SECTION_TAGS, type SectionTag } from './section.js';

// Sources: SPEC.md §6 "Footer". Fixed 192 bytes at the very end of the file; a file that does not
// end with a valid footer is truncated or is still being written.

export const FOOTER_MAGIC = Uint8Array.of(0x44, 0x4b, 0x42, 0x4b, 0x46, 0x4f, 0x4f, 0x54); // DKBKFOOT
export const FOOTER_LENGTH = 0xc0;

export interface SectionLocation {
  offset: number;
  length: number;
}

export interface Footer {
  backupId: Uint8Array;
  fileLength: number;
  frameCount: number;
  storedBlockCount: number;
  framesOffset: number;
  framesLength: number;
  /** Absent sections have `null`. */
  sections: Record<SectionTag, SectionLocation | null>;
}

const STRUCTURE = 'backup footer';

export function encodeFooter(f: Footer): Uint8Array {
  const w = new FieldWriter(FOOTER_LENGTH);
  w.set(0x00, FOOTER_MAGIC);
  w.set(0x08, f.backupId);
  w.u64(0x18, f.fileLength);
  w.u64(0x20, f.frameCount);
  w.u64(0x28, f.storedBlockCount);
  SECTION_TAGS.forEach((tag, k) => {
    const loc = f.sections[tag];
    w.u64(0x30 + 16 * k, loc?.offset ?? 0);
    w.u64(0x38 + 16 * k, loc?.length ?? 0);
  });
  w.u64(0xa0, f.framesOffset);
  w.u64(0xa8, f.framesLength);
  w.u32(0xbc, crc32c(w.bytes.subarray(0, 0xbc)));
  return w.bytes;
}

/** Parse the footer; `offset` is where it starts in the file (file length − 192). */
export function parseFooter(bytes: Uint8Array, offset: number): Footer {
  const r = new FieldReader<FormatReason>(bytes, STRUCTURE, offset);
  if (bytes.length !== FOOTER_LENGTH)
    throw r.corrupt('footer has the wrong length', 0, 'truncated');
  if (!r.slice(0, 8).every((b, i) => b === FOOTER_MAGIC[i])) {
    throw r.corrupt(
      'no footer at the end of the file: truncated or incomplete backup',
      0,
      'truncated',
    );
  }
  if (crc32c(bytes.subarray(0, 0xbc)) !== r.u32le(0xbc))
    throw r.corrupt('footer checksum mismatch', 0xbc, 'checksum');
  for (let at = 0xb0; at < 0xbc; at++) {
    if (r.u8(at) !== 0) throw r.corrupt('footer reserved bytes are not zero', at, 'reserved');
  }
  const sections = {} as Record<SectionTag, SectionLocation | null>;
  SECTION_TAGS.forEach((tag, k) => {
    const o = r.u64le(0x30 + 16 * k);
    const length = r.u64le(0x38 + 16 * k);
    if ((o === 0) !== (length === 0))
      throw r.corrupt(`section ${tag} has offset xor length zero`, 0x30 + 16 * k, 'bad-section');
    sections[tag] = o === 0 ? null : { offset: o, length };
  });
  return {
    backupId: r.slice(0x08, 16).slice(),
    fileLength: r.u64le(0x18),
    frameCount: r.u64le(0x20),
    storedBlockCount: r.u64le(0x28),
    framesOffset: r.u64le(0xa0),
    framesLength: r.u64le(0xa8),
    sections,
  };
}

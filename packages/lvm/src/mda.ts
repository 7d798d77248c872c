import { FieldReader } from '@diskube/core';
import { lvmCrc } from './crc.js';
import type { DiskLocation } from './label.js';
import type { LvmReason } from './reasons.js';

// Sources: LVM2 lib/format_text/layout.h (struct mda_header, struct raw_locn, FMTT_MAGIC,
// MDA_HEADER_SIZE) and lib/format_text/format-text.c (_raw_read_mda_header: checksum of bytes
// 4..512, magic, version 1, mdah->start equal to the area's offset; _vg_read_raw_area and
// text_read_metadata: the text of raw_locn[0] may wrap from the end of the area back to just
// after the header, and its checksum covers both pieces in order). raw_locn[1] is only the
// precommitted copy during a change; the committed metadata is raw_locn[0].

export const MDA_HEADER_SIZE = 512;
const FMTT_MAGIC = ' LVM2 x[5A%r0N*>';
const FMTT_VERSION = 1;
const RAW_LOCN_IGNORED = 0x1;
const STRUCTURE = 'LVM2 metadata area header';
/** The largest metadata text read: LVM itself refuses metadata above half the area; this bounds the buffer. */
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;

export interface MdaHeader {
  /** Absolute offset of the area in the PV (equal to its locator's). */
  start: number;
  size: number;
  /** The committed metadata text's place, or null when the area holds none or is ignored. */
  committed: { offset: number; size: number; checksum: number } | null;
}

/** Parses the 512-byte header at the start of a metadata area located at `area`. */
export function parseMdaHeader(bytes: Uint8Array, area: DiskLocation): MdaHeader {
  const r = new FieldReader<LvmReason>(bytes, STRUCTURE, area.offset).need(MDA_HEADER_SIZE);
  const checksum_xl = r.u32le(0x00);
  const actual = lvmCrc(r.slice(0x04, MDA_HEADER_SIZE - 4));
  if (checksum_xl !== actual) {
    throw r.corrupt(
      `checksum 0x${checksum_xl.toString(16)} does not match 0x${actual.toString(16)}`,
      0x00,
      'checksum',
    );
  }
  if (r.ascii(0x04, 16) !== FMTT_MAGIC) throw r.corrupt('bad magic', 0x04, 'bad-mda-magic');
  const version = r.u32le(0x14);
  if (version !== FMTT_VERSION) {
    throw r.corrupt(`version ${version} (expected 1)`, 0x14, 'bad-mda-version');
  }
  const start = r.u64le(0x18, 'start');
  const size = r.u64le(0x20, 'size');
  if (start !== area.offset || size !== area.size || size <= MDA_HEADER_SIZE) {
    throw r.corrupt(
      `header says [${start}, +${size}), its locator says [${area.offset}, +${area.size})`,
      0x18,
      'bad-mda-location',
    );
  }
  const offset = r.u64le(0x28, 'raw_locn.offset');
  const textSize = r.u64le(0x30, 'raw_locn.size');
  const checksum = r.u32le(0x38);
  const flags = r.u32le(0x3c);
  if (offset === 0 || flags & RAW_LOCN_IGNORED) return { start, size, committed: null };
  if (offset < MDA_HEADER_SIZE || offset >= size || textSize === 0) {
    throw r.corrupt(`metadata at +${offset} is outside the area`, 0x28, 'bad-mda-location');
  }
  if (textSize > size - MDA_HEADER_SIZE) {
    throw r.corrupt(
      `metadata of ${textSize} bytes does not fit the area`,
      0x30,
      'bad-mda-location',
    );
  }
  if (textSize > MAX_METADATA_BYTES) {
    throw r.corrupt(
      `metadata of ${textSize} bytes is larger than ${MAX_METADATA_BYTES}`,
      0x30,
      'too-large',
    );
  }
  return { start, size, committed: { offset, size: textSize, checksum } };
}

/**
 * The byte ranges (absolute in the PV) holding the committed text: one, or two when it wraps
 * around the end of the circular buffer to just after the header.
 */
export function metadataPieces(header: MdaHeader): Array<[number, number]> {
  const c = header.committed;
  if (!c) return [];
  const first = Math.min(c.size, header.size - c.offset);
  const pieces: Array<[number, number]> = [[header.start + c.offset, first]];
  if (first < c.size) pieces.push([header.start + MDA_HEADER_SIZE, c.size - first]);
  return pieces;
}

/** Checks the committed text's checksum and decodes it (a trailing NUL is dropped). */
export function decodeMetadata(header: MdaHeader, pieces: Uint8Array[]): string {
  const c = header.committed!;
  let crc: number | undefined;
  for (const piece of pieces) crc = lvmCrc(piece, crc);
  if (crc !== c.checksum) {
    throw new FieldReader<LvmReason>(
      new Uint8Array(0),
      'LVM2 metadata text',
      header.start + c.offset,
    ).corrupt(
      `checksum 0x${(crc ?? 0).toString(16)} does not match the header's 0x${c.checksum.toString(16)}`,
      0,
      'metadata-checksum',
    );
  }
  const joined = new Uint8Array(c.size);
  let at = 0;
  for (const piece of pieces) {
    joined.set(piece, at);
    at += piece.length;
  }
  let end = joined.length;
  while (end > 0 && joined[end - 1] === 0) end--;
  return new TextDecoder('utf-8').decode(joined.subarray(0, end));
}

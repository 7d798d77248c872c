import { CorruptError, FieldReader } from '@diskube/core';
import { fileReference } from './file-reference.js';
import { applyFixups } from './mft-record.js';
import type { NtfsReason } from './reasons.js';

/** One entry of a directory ($I30) index: a file reference and the FILE_NAME key. */
export interface DirectoryEntry {
  record: number;
  sequence: number;
  parentRecord: number;
  name: string;
}

export interface IndexRoot {
  /** Bytes per index block ("INDX" buffer) of $INDEX_ALLOCATION. */
  indexBlockSize: number;
  entries: DirectoryEntry[];
}

const INDEX_ENTRY_END = 0x0002;

/**
 * Parse the index entries that follow an INDEX_HEADER at `headerOffset` of `bytes`.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (INDEX_HEADER, INDEX_ENTRY, FILE_NAME_ATTR);
 * libyal libfsntfs "Index node header", "Index value", "The file name attribute".
 *
 * INDEX_HEADER: 0x00 entries_offset (4, from the header) · 0x04 index_length (4) ·
 * 0x08 allocated_size (4) · 0x0c flags (1).
 * INDEX_ENTRY: 0x00 indexed_file (8) · 0x08 length (2) · 0x0a key_length (2) · 0x0c flags (2) ·
 * 0x10 key (FILE_NAME: 0x00 parent_directory (8) · 0x40 file_name_length (1) · 0x42 name).
 */
export function parseIndexEntries(
  bytes: Uint8Array,
  headerOffset: number,
  structure: string,
  at: number,
): DirectoryEntry[] {
  const f = new FieldReader<NtfsReason>(bytes, structure, at).need(headerOffset + 0x10);
  const entries_offset = f.u32le(headerOffset);
  const index_length = f.u32le(headerOffset + 4);
  const end = headerOffset + index_length;
  let pos = headerOffset + entries_offset;
  if (entries_offset < 0x10 || end > bytes.length || pos > end) {
    throw new CorruptError(
      `index header (entries at ${entries_offset}, length ${index_length}) is out of range`,
      {
        structure,
        offset: at + headerOffset,
        reason: 'length-mismatch',
      },
    );
  }
  const out: DirectoryEntry[] = [];
  // Each entry is at least 16 bytes, so the loop is bounded by index_length / 16.
  for (;;) {
    if (pos + 0x10 > end) {
      throw new CorruptError('index entries run past the index without an end entry', {
        structure,
        offset: at + pos,
        reason: 'truncated',
      });
    }
    const length = f.u16le(pos + 8);
    const key_length = f.u16le(pos + 0x0a);
    const flags = f.u16le(pos + 0x0c);
    if (length < 0x10 || (length & 7) !== 0 || pos + length > end) {
      throw new CorruptError(`index entry length ${length} is invalid`, {
        structure,
        offset: at + pos,
        reason: 'length-mismatch',
      });
    }
    if (flags & INDEX_ENTRY_END) break;
    if (key_length < 0x42 || 0x10 + key_length > length) {
      throw new CorruptError(`index entry key length ${key_length} is invalid`, {
        structure,
        offset: at + pos,
        reason: 'length-mismatch',
      });
    }
    const ref = fileReference(f, pos);
    const key = pos + 0x10;
    const parent = fileReference(f, key);
    const file_name_length = f.u8(key + 0x40);
    if (0x42 + file_name_length * 2 > key_length) {
      throw new CorruptError('file name runs past the index key', {
        structure,
        offset: at + key,
        reason: 'truncated',
      });
    }
    out.push({
      record: ref.record,
      sequence: ref.sequence,
      parentRecord: parent.record,
      name: f.utf16le(key + 0x42, file_name_length),
    });
    pos += length;
  }
  return out;
}

/**
 * Parse the value of a directory's $INDEX_ROOT ($I30) attribute.
 *
 * | off  | size | field                     |
 * | 0x00 | 4    | type (0x30 for $I30)      |
 * | 0x04 | 4    | collation_rule            |
 * | 0x08 | 4    | index_block_size          |
 * | 0x0c | 1    | clusters_per_index_block  |
 * | 0x10 | 16+  | INDEX_HEADER, then entries |
 */
export function parseIndexRoot(value: Uint8Array, at: number): IndexRoot {
  const s = 'directory $INDEX_ROOT';
  const f = new FieldReader<NtfsReason>(value, s, at).need(0x20);
  const index_block_size = f.u32le(0x08);
  if (
    index_block_size < 512 ||
    index_block_size > 65536 ||
    (index_block_size & (index_block_size - 1)) !== 0
  ) {
    throw new CorruptError(`index block size ${index_block_size} is invalid`, {
      structure: s,
      offset: at + 0x08,
      reason: 'bad-size',
    });
  }
  return { indexBlockSize: index_block_size, entries: parseIndexEntries(value, 0x10, s, at) };
}

/**
 * Apply fixups to one "INDX" index block of $INDEX_ALLOCATION (in place) and parse its entries.
 * The INDEX_HEADER sits at 0x18, after magic, usa_ofs, usa_count, lsn and index_block_vcn.
 */
export function parseIndexBlock(block: Uint8Array, at: number): DirectoryEntry[] {
  const s = 'directory index block';
  const f = new FieldReader<NtfsReason>(block, s, at).need(0x28);
  const m = f.ascii(0, 4);
  if (m !== 'INDX') {
    throw new CorruptError(`bad index block signature ${JSON.stringify(m)}`, {
      structure: s,
      offset: at,
      reason: 'bad-magic',
    });
  }
  applyFixups(block, s, at);
  return parseIndexEntries(block, 0x18, s, at);
}

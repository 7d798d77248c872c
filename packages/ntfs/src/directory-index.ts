import { CorruptError } from '@diskube/core';
import { fileReference, magic, need, u8, u16, u32, utf16 } from './bytes.js';
import { applyFixups } from './mft-record.js';

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
  need(bytes, headerOffset + 0x10, structure, at);
  const entries_offset = u32(bytes, headerOffset, structure, at);
  const index_length = u32(bytes, headerOffset + 4, structure, at);
  const end = headerOffset + index_length;
  let pos = headerOffset + entries_offset;
  if (entries_offset < 0x10 || end > bytes.length || pos > end) {
    throw new CorruptError(
      `index header (entries at ${entries_offset}, length ${index_length}) is out of range`,
      {
        structure,
        offset: at + headerOffset,
        reason: 'bad-length',
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
        reason: 'bad-length',
      });
    }
    const length = u16(bytes, pos + 8, structure, at);
    const key_length = u16(bytes, pos + 0x0a, structure, at);
    const flags = u16(bytes, pos + 0x0c, structure, at);
    if (length < 0x10 || (length & 7) !== 0 || pos + length > end) {
      throw new CorruptError(`index entry length ${length} is invalid`, {
        structure,
        offset: at + pos,
        reason: 'bad-length',
      });
    }
    if (flags & INDEX_ENTRY_END) break;
    if (key_length < 0x42 || 0x10 + key_length > length) {
      throw new CorruptError(`index entry key length ${key_length} is invalid`, {
        structure,
        offset: at + pos,
        reason: 'bad-length',
      });
    }
    const ref = fileReference(bytes, pos, structure, at);
    const key = pos + 0x10;
    const parent = fileReference(bytes, key, structure, at);
    const file_name_length = u8(bytes, key + 0x40, structure, at);
    if (0x42 + file_name_length * 2 > key_length) {
      throw new CorruptError('file name runs past the index key', {
        structure,
        offset: at + key,
        reason: 'bad-length',
      });
    }
    out.push({
      record: ref.record,
      sequence: ref.sequence,
      parentRecord: parent.record,
      name: utf16(bytes, key + 0x42, file_name_length, structure, at),
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
  need(value, 0x20, s, at);
  const index_block_size = u32(value, 0x08, s, at);
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
  need(block, 0x28, s, at);
  const m = magic(block, 0);
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

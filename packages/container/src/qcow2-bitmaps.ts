import { type BlockSource, DirtyFilesystemError, FieldReader } from '@diskube/core';
import { parseQcow2Header, QCOW2_MAGIC } from './qcow2-header.js';
import { checkInFile, readStructure } from './read.js';
import type { ContainerReason } from './reasons.js';

// Sources: QEMU docs/interop/qcow2.txt "Bitmaps extension", "Bitmap directory", "Bitmap table",
// "Bitmaps" (data layout); QEMU block/qcow2-bitmap.c. Big-endian.
//
// Bitmaps extension (header extension 0x23852875): 0x00 nb_bitmaps u32, 0x04 reserved u32,
// 0x08 bitmap_directory_size u64, 0x10 bitmap_directory_offset u64. Valid only while autoclear
// bit 0 (header 0x58) is set: a QEMU that does not know bitmaps clears it when it writes.
// Directory entry: 0x00 bitmap_table_offset u64, 0x08 bitmap_table_size u32, 0x0C flags u32
// (bit 0 in_use, bit 1 auto, bit 2 extra_data_compatible), 0x10 type u8 (1: dirty tracking),
// 0x11 granularity_bits u8, 0x12 name_size u16, 0x14 extra_data_size u32, then extra data and
// the name, padded to 8 bytes. Bitmap table: u64 per cluster of bitmap data, bits 9-55 its
// offset; offset 0 reads as all zeros (bit 0 clear) or all ones (bit 0 set). Bitmap data: one
// bit per granule, least significant bit of each byte first.

const BITMAPS_EXTENSION = 0x23852875;
const AUTOCLEAR_BITMAPS = 1n;
const IN_USE = 1;
/** QEMU's limits: 65535 bitmaps, a 64 MiB directory, names of at most 1023 bytes. */
const MAX_BITMAPS = 65535;
const MAX_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** A persistent dirty bitmap of a qcow2 v3 image (QEMU's changed-block tracking). */
export interface Qcow2Bitmap {
  name: string;
  /** Bytes of the virtual disk per bit. */
  granularity: number;
  /** Bitmap flags: `auto` (QEMU keeps it up to date), `inUse` (not saved cleanly). */
  auto: boolean;
  inUse: boolean;
  /**
   * Why the bitmap cannot be trusted (in use, or the bitmaps extension was invalidated by a
   * writer that does not know bitmaps), or undefined when it can.
   */
  untrusted: string | undefined;
  /**
   * Sorted, coalesced `[offset, length]` ranges of the virtual disk the bitmap marks dirty
   * (clipped to the disk). Rejects with `DirtyFilesystemError` (reason `bitmap-untrusted`) when
   * the bitmap cannot be trusted: a stale bitmap would silently miss changed blocks.
   */
  dirtyRanges(): AsyncIterable<[offset: number, length: number]>;
}

/**
 * The persistent dirty bitmaps of a qcow2 file (read-only; none for other files or qcow2 v2).
 * Structural damage (tables outside the file, a bad granularity) is a `CorruptError`.
 */
export async function readQcow2Bitmaps(file: BlockSource): Promise<Qcow2Bitmap[]> {
  const head = await readStructure(file, 0, Math.min(file.size, 4096), 'qcow2 header');
  if (head.length < 4 || new DataView(head.buffer, head.byteOffset).getUint32(0) !== QCOW2_MAGIC) {
    return [];
  }
  const header = parseQcow2Header(head);
  if (header.version < 3) return [];
  const { clusterSize, size } = header;
  const cluster =
    clusterSize <= head.length
      ? head.subarray(0, clusterSize)
      : await readStructure(file, 0, Math.min(file.size, clusterSize), 'qcow2 header cluster');
  const h = new FieldReader<ContainerReason>(cluster, 'qcow2 header');
  const autoclearValid = (h.u64beBig(0x58) & AUTOCLEAR_BITMAPS) !== 0n;
  // Find the extension (the walk mirrors parseQcow2Extensions, which checks the bounds).
  let ext = -1;
  for (let at = header.headerLength; at + 8 <= cluster.length; ) {
    const type = h.u32be(at);
    const length = h.u32be(at + 4);
    if (type === 0) break;
    if (type === BITMAPS_EXTENSION && length >= 24) ext = at + 8;
    at += 8 + Math.ceil(length / 8) * 8;
  }
  if (ext < 0) return [];
  const count = h.u32be(ext);
  const dirSize = h.u64be(ext + 0x08, 'bitmap_directory_size');
  const dirOffset = h.u64be(ext + 0x10, 'bitmap_directory_offset');
  if (count > MAX_BITMAPS || dirSize > MAX_DIRECTORY_BYTES) {
    throw h.corrupt(`${count} bitmaps in a ${dirSize}-byte directory`, ext, 'too-large');
  }
  const dir = new FieldReader<ContainerReason>(
    await readStructure(file, dirOffset, dirSize, 'qcow2 bitmap directory'),
    'qcow2 bitmap directory',
    dirOffset,
  );
  const bitmaps: Qcow2Bitmap[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const tableOffset = dir.u64be(at, 'bitmap_table_offset');
    const tableSize = dir.u32be(at + 0x08);
    const flags = dir.u32be(at + 0x0c);
    const type = dir.u8(at + 0x10);
    const granularityBits = dir.u8(at + 0x11);
    const nameSize = dir.u16be(at + 0x12);
    const extraSize = dir.u32be(at + 0x14);
    const name = new TextDecoder().decode(dir.slice(at + 24 + extraSize, nameSize));
    if (type !== 1)
      throw dir.corrupt(`bitmap "${name}" has type ${type}`, at + 0x10, 'bad-geometry');
    // QEMU: granularity 512 B .. 2 GiB.
    if (granularityBits < 9 || granularityBits > 31) {
      throw dir.corrupt(
        `bitmap "${name}" has granularity 2^${granularityBits}`,
        at + 0x11,
        'bad-geometry',
      );
    }
    const granularity = 2 ** granularityBits;
    const bitsPerCluster = clusterSize * 8;
    const need = Math.ceil(Math.ceil(size / granularity) / bitsPerCluster);
    if (tableSize !== need) {
      throw dir.corrupt(
        `bitmap "${name}" has ${tableSize} table entries, the disk needs ${need}`,
        at + 0x08,
        tableSize < need ? 'table-too-small' : 'bad-geometry',
      );
    }
    if (tableOffset % clusterSize !== 0) {
      throw dir.corrupt(`bitmap "${name}" table is not cluster-aligned`, at, 'unaligned');
    }
    checkInFile(file.size, tableOffset, tableSize * 8, 'qcow2 bitmap table');
    const inUse = (flags & IN_USE) !== 0;
    const untrusted = inUse
      ? 'it is in use (QEMU did not save it cleanly)'
      : autoclearValid
        ? undefined
        : 'the image was written by a program that does not keep bitmaps (autoclear bit 0 clear)';
    bitmaps.push({
      name,
      granularity,
      auto: (flags & 2) !== 0,
      inUse,
      untrusted,
      dirtyRanges: () =>
        dirtyRanges(file, {
          name,
          untrusted,
          tableOffset,
          tableSize,
          granularity,
          clusterSize,
          size,
        }),
    });
    at += Math.ceil((24 + extraSize + nameSize) / 8) * 8;
  }
  return bitmaps;
}

async function* dirtyRanges(
  file: BlockSource,
  b: {
    name: string;
    untrusted: string | undefined;
    tableOffset: number;
    tableSize: number;
    granularity: number;
    clusterSize: number;
    size: number;
  },
): AsyncIterable<[number, number]> {
  if (b.untrusted !== undefined) {
    throw new DirtyFilesystemError(`bitmap "${b.name}" cannot be trusted: ${b.untrusted}`, {
      structure: 'qcow2 bitmap directory',
      reason: 'bitmap-untrusted',
    });
  }
  const table = new FieldReader<ContainerReason>(
    await readStructure(file, b.tableOffset, b.tableSize * 8, 'qcow2 bitmap table'),
    'qcow2 bitmap table',
    b.tableOffset,
  );
  const perCluster = b.clusterSize * 8 * b.granularity; // disk bytes one data cluster covers
  let start = -1;
  let end = -1;
  const mark = (o: number, l: number) => {
    const e = Math.min(o + l, b.size);
    if (o === end) end = e;
    else {
      const done: [number, number] | undefined = start >= 0 ? [start, end - start] : undefined;
      start = o;
      end = e;
      return done;
    }
    return undefined;
  };
  for (let i = 0; i < b.tableSize; i++) {
    const hi = table.u32be(i * 8);
    const lo = table.u32be(i * 8 + 4);
    if ((hi & 0xff000000) !== 0 || (lo & 0x1fe) !== 0) {
      throw table.corrupt(`bitmap table entry ${i} has reserved bits set`, i * 8, 'reserved');
    }
    const host = (hi & 0x00ffffff) * 2 ** 32 + (lo & 0xfffffe00);
    const base = i * perCluster;
    if (host === 0) {
      if (lo & 1) {
        const done = mark(base, perCluster);
        if (done) yield done;
      }
      continue;
    }
    if (host % b.clusterSize !== 0) {
      throw table.corrupt(`bitmap data cluster ${i} is not aligned`, i * 8, 'unaligned');
    }
    const data = await readStructure(file, host, b.clusterSize, 'qcow2 bitmap data');
    for (let byte = 0; byte < data.length; byte++) {
      const v = data[byte]!;
      if (v === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if ((v >> bit) & 1) {
          const o = base + (byte * 8 + bit) * b.granularity;
          if (o >= b.size) break;
          const done = mark(o, b.granularity);
          if (done) yield done;
        }
      }
    }
  }
  if (start >= 0) yield [start, end - start];
}

import { type BlockSource, CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { Mapper } from './disk.js';
import { ByteLru } from './lru.js';
import { isPowerOfTwo, MAX_TABLE_BYTES, readStructure } from './read.js';
import type { ContainerReason } from './reasons.js';

// Sources: Microsoft "Virtual Hard Disk Image Format Specification" v1.0 (2006), libyal libvhdi
// "VHD format" notes, QEMU block/vpc.c. All numbers are big-endian.
//
// Footer (512 bytes; at the end of every VHD, and copied at offset 0 in dynamic disks):
//   0x00 cookie "conectix", 0x08 features, 0x0C version 0x00010000, 0x10 data offset (u64; the
//   dynamic header, all-ones for fixed disks), 0x28 original size, 0x30 current size,
//   0x3C disk type (2 fixed, 3 dynamic, 4 differencing), 0x40 checksum.
// Dynamic header (1024 bytes, at the footer's data offset):
//   0x00 cookie "cxsparse", 0x10 table offset (BAT, u64), 0x18 version 0x00010000,
//   0x1C max table entries, 0x20 block size, 0x24 checksum.
// BAT: one u32 per block, the block's sector offset, 0xFFFFFFFF when not allocated. A block is a
// sector bitmap (one bit per sector, MSB first, padded to whole sectors) then the data.

export interface VhdFooter {
  dataOffset: bigint;
  currentSize: number;
  diskType: number;
}

/** One's complement of the byte sum with the checksum field taken as zero. */
function vhdChecksum(bytes: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (i >= checksumAt && i < checksumAt + 4) continue;
    sum = (sum + bytes[i]!) >>> 0;
  }
  return ~sum >>> 0;
}

export function parseVhdFooter(bytes: Uint8Array, base: number): VhdFooter {
  const f = new FieldReader<ContainerReason>(bytes, 'VHD footer', base);
  if (f.ascii(0, 8) !== 'conectix') throw f.corrupt('bad VHD footer cookie', 0, 'bad-magic');
  if (f.u32be(0x40) !== vhdChecksum(bytes.subarray(0, 512), 0x40)) {
    throw f.corrupt('VHD footer checksum mismatch', 0x40, 'checksum');
  }
  const version = f.u32be(0x0c);
  if (version >>> 16 !== 1) {
    throw new UnsupportedError(`VHD version 0x${version.toString(16)} is not supported`, {
      structure: 'VHD footer',
      offset: base + 0x0c,
      reason: 'version',
    });
  }
  return {
    dataOffset: f.u64beBig(0x10),
    currentSize: f.u64be(0x30, 'current size'),
    diskType: f.u32be(0x3c),
  };
}

export interface VhdDynamicHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
}

export function parseVhdDynamicHeader(bytes: Uint8Array, base: number): VhdDynamicHeader {
  const f = new FieldReader<ContainerReason>(bytes, 'VHD dynamic header', base);
  if (f.ascii(0, 8) !== 'cxsparse')
    throw f.corrupt('bad VHD dynamic header cookie', 0, 'bad-magic');
  if (f.u32be(0x24) !== vhdChecksum(bytes.subarray(0, 1024), 0x24)) {
    throw f.corrupt('VHD dynamic header checksum mismatch', 0x24, 'checksum');
  }
  const version = f.u32be(0x18);
  if (version >>> 16 !== 1) {
    throw new UnsupportedError(`VHD dynamic header version 0x${version.toString(16)}`, {
      structure: 'VHD dynamic header',
      offset: base + 0x18,
      reason: 'version',
    });
  }
  const blockSize = f.u32be(0x20);
  if (!isPowerOfTwo(blockSize) || blockSize < 512) {
    throw f.corrupt(`block size ${blockSize} is not a power of two >= 512`, 0x20, 'bad-geometry');
  }
  return {
    tableOffset: f.u64be(0x10, 'table offset'),
    maxTableEntries: f.u32be(0x1c),
    blockSize,
  };
}

/**
 * The parent a differencing VHD names, for the refusal message: the dynamic header's Parent
 * Unicode Name (0x40, 512 bytes UTF-16BE, NUL-padded) and Parent Unique Id (0x28). Sources:
 * Microsoft VHD specification, "Dynamic Disk Header Format". A header we cannot read still
 * leaves the disk refused (as differencing), only less precisely named.
 */
async function vhdParentName(file: BlockSource, dataOffset: bigint): Promise<string> {
  if (dataOffset > BigInt(file.size - 1024)) return 'not named (the dynamic header is missing)';
  const at = Number(dataOffset);
  const f = new FieldReader<ContainerReason>(
    await readStructure(file, at, 1024, 'VHD dynamic header'),
    'VHD dynamic header',
    at,
  );
  if (f.ascii(0, 8) !== 'cxsparse') return 'not named (the dynamic header is unreadable)';
  const id = [...f.slice(0x28, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  let name = '';
  for (let i = 0; i < 256; i++) {
    const unit = f.u16be(0x40 + i * 2);
    if (unit === 0) break;
    name += String.fromCharCode(unit);
  }
  return name === '' ? `unnamed (parent unique id ${id})` : `"${name}" (parent unique id ${id})`;
}

export async function openVhd(
  file: BlockSource,
  cacheBytes: number,
): Promise<{ mapper: Mapper; details: Record<string, string | number | boolean> }> {
  if (file.size < 512) {
    throw new CorruptError('file too small for a VHD footer', {
      structure: 'VHD footer',
      reason: 'truncated',
    });
  }
  // The footer at the end is authoritative; dynamic disks keep a copy at offset 0, used when the
  // end copy is damaged (e.g. a truncated download).
  const endAt = file.size - 512;
  let footer: VhdFooter;
  try {
    footer = parseVhdFooter(await readStructure(file, endAt, 512, 'VHD footer'), endAt);
  } catch (endError) {
    const head = await readStructure(file, 0, 512, 'VHD footer');
    if (String.fromCharCode(...head.subarray(0, 8)) !== 'conectix') throw endError;
    footer = parseVhdFooter(head, 0);
  }
  const { diskType, currentSize } = footer;
  if (diskType === 2) {
    if (currentSize > file.size - 512) {
      throw new CorruptError(`fixed VHD claims ${currentSize} bytes but holds ${file.size - 512}`, {
        structure: 'VHD footer',
        offset: endAt + 0x30,
        reason: 'out-of-range',
      });
    }
    // A fixed VHD is the disk then the footer. Whole sectors between them mean the size field
    // lies (a zeroed one would open as a 0-byte disk): the data past it would be dropped.
    if (file.size - 512 - currentSize >= 512) {
      throw new CorruptError(
        `fixed VHD claims ${currentSize} bytes but its file holds ${file.size - 512} before the footer`,
        { structure: 'VHD footer', offset: endAt + 0x30, reason: 'bad-geometry' },
      );
    }
    const mapper: Mapper = {
      format: 'vhd',
      size: currentSize,
      allocationUnit: 512,
      async runAt(offset, max) {
        return { kind: 'data', length: max, host: offset };
      },
      async *zeroRanges() {},
    };
    return { mapper, details: { subformat: 'fixed' } };
  }
  if (diskType === 4) {
    const parent = await vhdParentName(file, footer.dataOffset);
    throw new UnsupportedError(
      `differencing VHD: its parent is ${parent}; a differencing disk read alone returns zeros where the parent holds data (convert the chain with qemu-img convert first)`,
      { structure: 'VHD footer', offset: endAt + 0x3c, reason: 'backing-file' },
    );
  }
  if (diskType !== 3) {
    throw new CorruptError(`unknown VHD disk type ${diskType}`, {
      structure: 'VHD footer',
      offset: endAt + 0x3c,
      reason: 'disk-type',
    });
  }
  if (footer.dataOffset > BigInt(file.size)) {
    throw new CorruptError('VHD data offset lies outside the file', {
      structure: 'VHD footer',
      offset: endAt + 0x10,
      reason: 'out-of-range',
    });
  }
  const dynAt = Number(footer.dataOffset);
  const dyn = parseVhdDynamicHeader(
    await readStructure(file, dynAt, 1024, 'VHD dynamic header'),
    dynAt,
  );
  const { blockSize } = dyn;
  const blocks = Math.ceil(currentSize / blockSize);
  if (dyn.maxTableEntries < blocks) {
    throw new CorruptError(
      `BAT of ${dyn.maxTableEntries} entries cannot map ${currentSize} bytes`,
      {
        structure: 'VHD dynamic header',
        offset: dynAt + 0x1c,
        reason: 'table-too-small',
      },
    );
  }
  // Read the BAT as far as its header says (bounded by the file): entries past the ones the
  // size needs must be unallocated, as in the qcow2 L1 check. One that maps a block says the
  // size field lies (a zeroed size would open as a 0-byte disk) and its data would be dropped.
  const fits = Math.floor(Math.max(0, file.size - dyn.tableOffset) / 4);
  const entries = Math.max(blocks, Math.min(dyn.maxTableEntries, fits, MAX_TABLE_BYTES / 4));
  const bat = await readStructure(file, dyn.tableOffset, entries * 4, 'VHD BAT');
  const view = new DataView(bat.buffer, bat.byteOffset, bat.byteLength);
  for (let i = blocks; i < entries; i++) {
    if (view.getUint32(i * 4) !== 0xffffffff) {
      throw new CorruptError(
        `BAT entry ${i} maps a block beyond the ${currentSize}-byte virtual size`,
        { structure: 'VHD BAT', offset: dyn.tableOffset + i * 4, reason: 'out-of-range' },
      );
    }
  }
  const sectorsPerBlock = blockSize / 512;
  const bitmapBytes = Math.ceil(sectorsPerBlock / 8 / 512) * 512;
  const span = bitmapBytes + blockSize;
  // Every allocated block must fit in the file and no two may overlap (a cheap sort of the
  // allocated offsets); overlapping blocks would alias guest data.
  const starts: number[] = [];
  for (let i = 0; i < blocks; i++) {
    const e = view.getUint32(i * 4);
    if (e === 0xffffffff) continue;
    const host = e * 512;
    if (host + span > file.size || host < 512) {
      throw new CorruptError(`block ${i} at ${host} lies outside the file`, {
        structure: 'VHD BAT',
        offset: dyn.tableOffset + i * 4,
        reason: 'out-of-range',
      });
    }
    starts.push(host);
  }
  starts.sort((a, b) => a - b);
  for (let i = 1; i < starts.length; i++) {
    if (starts[i]! < starts[i - 1]! + span) {
      throw new CorruptError(`blocks at ${starts[i - 1]} and ${starts[i]} overlap`, {
        structure: 'VHD BAT',
        offset: dyn.tableOffset,
        reason: 'overlap',
      });
    }
  }
  const bitmaps = new ByteLru(cacheBytes);
  const mapper: Mapper = {
    format: 'vhd',
    size: currentSize,
    allocationUnit: blockSize,
    async runAt(offset, max) {
      const block = Math.floor(offset / blockSize);
      const within = offset - block * blockSize;
      const room = Math.min(max, blockSize - within);
      const e = view.getUint32(block * 4);
      if (e === 0xffffffff) return { kind: 'zero', length: room };
      const host = e * 512;
      // The sector bitmap says which sectors hold data; clear bits read as zeros.
      const bitmap = await bitmaps.get(host, () =>
        readStructure(file, host, bitmapBytes, 'VHD sector bitmap'),
      );
      const first = Math.floor(within / 512);
      const bit = (s: number) => (bitmap[s >> 3]! >> (7 - (s & 7))) & 1;
      const set = bit(first);
      let end = (first + 1) * 512;
      while (end < within + room && bit(end / 512) === set) end += 512;
      const length = Math.min(room, end - within);
      return set
        ? { kind: 'data', length, host: host + bitmapBytes + within }
        : { kind: 'zero', length };
    },
    async *zeroRanges() {
      for (let i = 0; i < blocks; i++) {
        if (view.getUint32(i * 4) === 0xffffffff) yield [i * blockSize, blockSize];
      }
    },
  };
  return { mapper, details: { subformat: 'dynamic', blockSize } };
}

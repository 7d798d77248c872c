import { type BlockSource, CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { LayerIdentity, ParentLink } from './chain.js';
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
  /** Unique Id (0x44), 32 hex digits: what a differencing child records as its parent's. */
  uniqueId: string;
}

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

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
    uniqueId: hex(f.slice(0x44, 16)),
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
 * The parent a differencing VHD names: its parent locators (0x240, eight entries of {u32
 * platform code, u32 data space, u32 data length, u32 reserved, u64 data offset}; W2ru is a
 * relative and W2ku an absolute Windows path, UTF-16LE), the Parent Unicode Name (0x40, 512
 * bytes UTF-16BE, NUL-padded) and the Parent Unique Id (0x28). Sources: Microsoft VHD
 * specification, "Dynamic Disk Header Format"; QEMU block/vpc.c. Paths come back with `/` as
 * the separator and a leading `./` dropped: the resolver opens them beside the child.
 */
async function vhdParent(
  file: BlockSource,
  dyn: Uint8Array,
  dynAt: number,
): Promise<{ hints: string[]; uniqueId: string; described: string }> {
  const f = new FieldReader<ContainerReason>(dyn, 'VHD dynamic header', dynAt);
  const uniqueId = hex(f.slice(0x28, 16));
  let name = '';
  for (let i = 0; i < 256; i++) {
    const unit = f.u16be(0x40 + i * 2);
    if (unit === 0) break;
    name += String.fromCharCode(unit);
  }
  const found: Record<string, string> = {};
  for (let i = 0; i < 8; i++) {
    const at = 0x240 + i * 24;
    const code = f.ascii(at, 4);
    if (code !== 'W2ru' && code !== 'W2ku') continue;
    const length = f.u32be(at + 8);
    const offset = f.u64be(at + 16, 'parent locator data offset');
    // Windows paths are at most 32767 UTF-16 units.
    if (length === 0 || length > 65534 || length % 2 !== 0) {
      throw f.corrupt(`parent locator ${code} of ${length} bytes`, at + 8, 'bad-geometry');
    }
    const bytes = await readStructure(file, offset, length, 'VHD parent locator');
    let path = '';
    for (let j = 0; j + 1 < length; j += 2) {
      const unit = bytes[j]! | (bytes[j + 1]! << 8);
      if (unit === 0) break;
      path += String.fromCharCode(unit);
    }
    found[code] ??= path;
  }
  const normalise = (p: string) => p.replace(/\\/g, '/').replace(/^(\.\/)+/, '');
  const hints = [found.W2ru, found.W2ku, name === '' ? undefined : name]
    .filter((h): h is string => h !== undefined && h !== '')
    .map(normalise)
    .filter((h, i, all) => all.indexOf(h) === i);
  const shown = found.W2ru ?? found.W2ku ?? name;
  const described =
    shown === ''
      ? `unnamed (parent unique id ${uniqueId})`
      : `"${shown}" (parent unique id ${uniqueId})`;
  return { hints, uniqueId, described };
}

export async function openVhd(
  file: BlockSource,
  cacheBytes: number,
): Promise<{
  mapper: Mapper;
  details: Record<string, string | number | boolean>;
  parent?: ParentLink;
  identity: LayerIdentity;
}> {
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
    return { mapper, details: { subformat: 'fixed' }, identity: { uniqueId: footer.uniqueId } };
  }
  if (diskType !== 3 && diskType !== 4) {
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
  const dynBytes = await readStructure(file, dynAt, 1024, 'VHD dynamic header');
  const dyn = parseVhdDynamicHeader(dynBytes, dynAt);
  let parent: ParentLink | undefined;
  if (diskType === 4) {
    const named = await vhdParent(file, dynBytes, dynAt);
    if (named.hints.length === 0) {
      throw new UnsupportedError(
        `differencing VHD: its parent is ${named.described}, named by no locator`,
        { structure: 'VHD dynamic header', offset: dynAt + 0x40, reason: 'backing-file' },
      );
    }
    parent = {
      hints: named.hints,
      kind: 'path',
      format: 'vhd',
      structure: 'VHD dynamic header',
      expect: [{ field: 'uniqueId', value: named.uniqueId, what: 'unique id' }],
      refusal: () =>
        new UnsupportedError(
          `differencing VHD: its parent is ${named.described}; pass resolveParent to follow it (or convert the chain with qemu-img convert first)`,
          { structure: 'VHD footer', offset: endAt + 0x3c, reason: 'backing-file' },
        ),
    };
  }
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
      // Not allocated here: the parent shows through (zeros in a dynamic disk).
      if (e === 0xffffffff) return { kind: 'absent', length: room };
      const host = e * 512;
      // The sector bitmap says which sectors hold data; clear bits read from the parent (as
      // zeros in a dynamic disk).
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
        : { kind: 'absent', length };
    },
    async *zeroRanges() {
      for (let i = 0; i < blocks; i++) {
        if (view.getUint32(i * 4) === 0xffffffff) yield [i * blockSize, blockSize, true];
      }
    },
  };
  return {
    mapper,
    details: { subformat: diskType === 4 ? 'differencing' : 'dynamic', blockSize },
    parent,
    identity: { uniqueId: footer.uniqueId },
  };
}

import { type BlockSource, CorruptError, UnsupportedError } from '@diskube/core';
import type { LayerIdentity, ParentLink } from './chain.js';
import type { Mapper } from './disk.js';
import { ByteLru } from './lru.js';
import { checkInFile, MAX_TABLE_BYTES, readStructure } from './read.js';
import {
  BAT_GUID,
  currentVhdxHeader,
  KiB,
  METADATA_GUID,
  MiB,
  parseVhdxHeader,
  parseVhdxMetadata,
  parseVhdxRegionTable,
} from './vhdx-header.js';

// Sources: [MS-VHDX] §2.5 (BAT): 64-bit entries, State in bits 0-2, FileOffsetMB in bits 20-63.
// Payload block i is BAT entry i + floor(i / chunkRatio): after every chunkRatio payload entries
// comes one sector bitmap entry, chunkRatio = 2^23 * logicalSectorSize / blockSize.
// Payload states: 0 NOT_PRESENT, 1 UNDEFINED, 2 ZERO, 3 UNMAPPED (all read as zeros here: there
// is no parent), 6 FULLY_PRESENT, 7 PARTIALLY_PRESENT (differencing only).

const PAYLOAD_FULLY_PRESENT = 6;
const PAYLOAD_PARTIALLY_PRESENT = 7;
const PAYLOAD_ZERO = 2;

export async function openVhdx(file: BlockSource): Promise<{
  mapper: Mapper;
  details: Record<string, string | number | boolean>;
  parent: ParentLink | undefined;
  identity: LayerIdentity;
}> {
  const ident = await readStructure(file, 0, 8, 'VHDX file identifier');
  if (String.fromCharCode(...ident) !== 'vhdxfile') {
    throw new CorruptError('bad VHDX file identifier', {
      structure: 'VHDX file identifier',
      offset: 0,
      reason: 'bad-magic',
    });
  }
  // The header section is the first 1 MiB: identifier, two headers, two region tables.
  const read = async (at: number, n: number, what: string) =>
    file.size >= at + n ? readStructure(file, at, n, what) : new Uint8Array(0);
  const h1 = parseVhdxHeader(await read(64 * KiB, 4 * KiB, 'VHDX header'), 64 * KiB);
  const h2 = parseVhdxHeader(await read(128 * KiB, 4 * KiB, 'VHDX header'), 128 * KiB);
  const header = currentVhdxHeader(h1, h2);
  if (!header) {
    throw new CorruptError('neither VHDX header is valid', {
      structure: 'VHDX header',
      offset: 64 * KiB,
      reason: 'checksum',
    });
  }
  const regions =
    parseVhdxRegionTable(await read(192 * KiB, 64 * KiB, 'VHDX region table'), 192 * KiB) ??
    parseVhdxRegionTable(await read(256 * KiB, 64 * KiB, 'VHDX region table'), 256 * KiB);
  if (!regions) {
    throw new CorruptError('neither VHDX region table is valid', {
      structure: 'VHDX region table',
      offset: 192 * KiB,
      reason: 'checksum',
    });
  }
  const batRegion = regions.find((r) => r.guid === BAT_GUID);
  const metaRegion = regions.find((r) => r.guid === METADATA_GUID);
  if (!batRegion || !metaRegion) {
    throw new CorruptError('VHDX region table lacks the BAT or metadata region', {
      structure: 'VHDX region table',
      offset: 192 * KiB,
      reason: 'missing',
    });
  }
  const meta = parseVhdxMetadata(
    await readStructure(file, metaRegion.fileOffset, metaRegion.length, 'VHDX metadata'),
    metaRegion.fileOffset,
  );
  const differencing = meta.hasParent || meta.parentLocator !== undefined;
  let parent: ParentLink | undefined;
  if (differencing) {
    // A differencing VHDX: blocks not present here belong to the parent. Look for it the way
    // Hyper-V does (relative path first), and check its DataWriteGuid against parent_linkage.
    const l = meta.parentLocator ?? {};
    const paths = [l.relative_path, l.volume_path, l.absolute_win32_path].filter(
      (p): p is string => p !== undefined && p !== '',
    );
    const path = l.relative_path ?? l.absolute_win32_path ?? l.volume_path;
    const named =
      path !== undefined
        ? `"${path}"`
        : l.parent_linkage !== undefined
          ? `the image with DataWriteGuid ${l.parent_linkage} (no path in its parent locator)`
          : 'not named (no readable parent locator)';
    const refusal = () =>
      new UnsupportedError(
        `differencing VHDX: its parent is ${named}; ${paths.length > 0 ? 'pass resolveParent to follow it' : 'it cannot be found'} (or convert the chain with qemu-img convert first)`,
        { structure: 'VHDX metadata', offset: metaRegion.fileOffset, reason: 'backing-file' },
      );
    if (paths.length === 0) throw refusal();
    const linkage = l.parent_linkage?.replace(/[{}]/g, '');
    parent = {
      hints: paths
        .map((p) => p.replace(/\\/g, '/').replace(/^(\.\/)+/, ''))
        .filter((h, i, all) => all.indexOf(h) === i),
      kind: 'path',
      format: 'vhdx',
      structure: 'VHDX parent locator',
      expect:
        linkage === undefined
          ? []
          : [{ field: 'dataWriteGuid', value: linkage, what: 'DataWriteGuid' }],
      refusal,
    };
  }
  const { blockSize, virtualDiskSize } = meta;
  const chunkRatio = (2 ** 23 * meta.logicalSectorSize) / blockSize;
  const dataBlocks = Math.ceil(virtualDiskSize / blockSize);
  const totalEntries =
    dataBlocks === 0 ? 0 : dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
  if (totalEntries * 8 > batRegion.length) {
    throw new CorruptError(
      `BAT region of ${batRegion.length} bytes cannot hold ${totalEntries} entries`,
      {
        structure: 'VHDX BAT',
        offset: batRegion.fileOffset,
        reason: 'table-too-small',
      },
    );
  }
  checkInFile(file.size, batRegion.fileOffset, batRegion.length, 'VHDX BAT region');
  // Read the BAT region as far as the size needs, and beyond it up to the table limit: a
  // payload entry past the ones the size needs that maps a block says the size field lies (a
  // zeroed one would open as a 0-byte disk) and its data would be dropped.
  const readEntries = Math.max(
    totalEntries,
    Math.min(Math.floor(batRegion.length / 8), MAX_TABLE_BYTES / 8),
  );
  const bat = await readStructure(file, batRegion.fileOffset, readEntries * 8, 'VHDX BAT');
  const view = new DataView(bat.buffer, bat.byteOffset, bat.byteLength);
  for (let e = totalEntries; e < readEntries; e++) {
    // Sector bitmap entries (every chunkRatio + 1-th) may be present in a differencing disk.
    if ((e + 1) % (chunkRatio + 1) === 0) continue;
    const state = view.getUint32(e * 8, true) & 7;
    if (state === PAYLOAD_FULLY_PRESENT || state === PAYLOAD_PARTIALLY_PRESENT) {
      throw new CorruptError(
        `BAT entry ${e} maps a block beyond the ${virtualDiskSize}-byte virtual size`,
        { structure: 'VHDX BAT', offset: batRegion.fileOffset + e * 8, reason: 'out-of-range' },
      );
    }
  }
  // Decode the payload entries once: state and byte offset per block (Float64 holds offsets
  // exactly below 2^53). Validate offsets and overlaps while at it.
  const states = new Uint8Array(dataBlocks);
  const offsets = new Float64Array(dataBlocks);
  const present: number[] = [];
  for (let i = 0; i < dataBlocks; i++) {
    const e = i + Math.floor(i / chunkRatio);
    const lo = view.getUint32(e * 8, true);
    const hi = view.getUint32(e * 8 + 4, true);
    const state = lo & 7;
    const at = batRegion.fileOffset + e * 8;
    // Partially present (differencing only): some sectors here, the rest in the parent; the
    // chunk's sector bitmap says which.
    if (state === PAYLOAD_FULLY_PRESENT || (state === PAYLOAD_PARTIALLY_PRESENT && differencing)) {
      // FileOffsetMB is bits 20-63: (hi << 12) | (lo >>> 20), in MiB.
      const mb = hi * 2 ** 12 + (lo >>> 20);
      const host = mb * MiB;
      if (!Number.isSafeInteger(host) || host < MiB || host + blockSize > file.size) {
        throw new CorruptError(`payload block ${i} at ${host} lies outside the file`, {
          structure: 'VHDX BAT',
          offset: at,
          reason: 'out-of-range',
        });
      }
      offsets[i] = host;
      present.push(host);
    } else if (state > 3) {
      throw new CorruptError(`payload block ${i} has state ${state}`, {
        structure: 'VHDX BAT',
        offset: at,
        reason: 'bad-block-state',
      });
    }
    states[i] = state;
  }
  present.sort((a, b) => a - b);
  for (let i = 1; i < present.length; i++) {
    if (present[i]! < present[i - 1]! + blockSize) {
      throw new CorruptError(`payload blocks at ${present[i - 1]} and ${present[i]} overlap`, {
        structure: 'VHDX BAT',
        offset: batRegion.fileOffset,
        reason: 'overlap',
      });
    }
  }
  // Sector bitmap of chunk c ([MS-VHDX] §2.5.1.2): BAT entry (c + 1) × (chunkRatio + 1) − 1,
  // state 6 (SB_BLOCK_PRESENT), 1 MiB, one bit per logical sector, least significant bit first.
  const sectorSize = meta.logicalSectorSize;
  const bitmaps = new ByteLru(4 * MiB);
  async function sectorBitmap(chunk: number): Promise<Uint8Array> {
    const e = (chunk + 1) * (chunkRatio + 1) - 1;
    const at = batRegion!.fileOffset + e * 8;
    if (e * 8 + 8 > bat.length) {
      throw new CorruptError(`sector bitmap entry of chunk ${chunk} lies past the BAT`, {
        structure: 'VHDX BAT',
        offset: at,
        reason: 'missing',
      });
    }
    const lo = view.getUint32(e * 8, true);
    const hi = view.getUint32(e * 8 + 4, true);
    if ((lo & 7) !== 6) {
      throw new CorruptError(`partially present block in chunk ${chunk} without a sector bitmap`, {
        structure: 'VHDX BAT',
        offset: at,
        reason: 'missing',
      });
    }
    const host = (hi * 2 ** 12 + (lo >>> 20)) * MiB;
    return bitmaps.get(host, () => readStructure(file, host, MiB, 'VHDX sector bitmap'));
  }
  const mapper: Mapper = {
    format: 'vhdx',
    size: virtualDiskSize,
    allocationUnit: blockSize,
    async runAt(offset, max) {
      const block = Math.floor(offset / blockSize);
      const within = offset - block * blockSize;
      const length = Math.min(max, blockSize - within);
      const state = states[block]!;
      if (state === PAYLOAD_FULLY_PRESENT) {
        return { kind: 'data', length, host: offsets[block]! + within };
      }
      if (state === PAYLOAD_ZERO) return { kind: 'zero', length };
      if (state !== PAYLOAD_PARTIALLY_PRESENT) return { kind: 'absent', length };
      const chunk = Math.floor(block / chunkRatio);
      const bitmap = await sectorBitmap(chunk);
      // Sector index within the chunk.
      const first = ((block % chunkRatio) * blockSize + within) / sectorSize;
      const bit = (s: number) => (bitmap[s >> 3]! >> (s & 7)) & 1;
      const set = bit(Math.floor(first));
      let end = (Math.floor(first) + 1) * sectorSize - (block % chunkRatio) * blockSize;
      while (
        end < within + length &&
        bit(((block % chunkRatio) * blockSize + end) / sectorSize) === set
      ) {
        end += sectorSize;
      }
      const run = Math.min(length, end - within);
      return set
        ? { kind: 'data', length: run, host: offsets[block]! + within }
        : { kind: 'absent', length: run };
    },
    async *zeroRanges() {
      for (let i = 0; i < dataBlocks; i++) {
        const state = states[i]!;
        if (state === PAYLOAD_FULLY_PRESENT || state === PAYLOAD_PARTIALLY_PRESENT) continue;
        yield [i * blockSize, blockSize, state !== PAYLOAD_ZERO];
      }
    },
  };
  return {
    mapper,
    details: {
      version: 1,
      blockSize,
      logicalSectorSize: meta.logicalSectorSize,
      ...(differencing ? { subformat: 'differencing' } : {}),
    },
    parent,
    identity: { dataWriteGuid: header.dataWriteGuid },
  };
}

import { type BlockSource, CorruptError, UnsupportedError } from '@diskube/core';
import type { LayerIdentity, ParentLink } from './chain.js';
import { inflateZlib } from './decompress.js';
import type { Mapper, Run } from './disk.js';
import { ByteLru } from './lru.js';
import { checkInFile, readStructure } from './read.js';
import { parseVmdkSparseHeader, VMDK_SPARSE_MAGIC, type VmdkSparseHeader } from './vmdk-header.js';

export { VMDK_SPARSE_MAGIC };

// Sources: VMware "Virtual Disk Format 5.0" (grain directory and grain tables, stream-optimized
// markers, the text descriptor), libyal libvmdk notes, QEMU block/vmdk.c.
//
// A sparse extent maps grains through two levels: the grain directory (GD, u32 sector offsets
// of grain tables) and grain tables (GT, numGTEsPerGT u32 sector offsets of grains). A GTE of 0
// is unallocated (zeros: images that name a parent are refused, see refuseVmdkParent), 1 is a zero grain when the header's
// zeroed-grain flag is set. Compressed grains start with a marker {u64 lba, u32 size} followed by
// `size` bytes of zlib data. Stream-optimized files have gdOffset = GD_AT_END in the header; the
// real one is in the footer, a copy of the header 1024 bytes before the end of the file.

type Details = Record<string, string | number | boolean>;

/** What the VMDK openers return: the mapper, plus the parent link and the CID. */
interface VmdkLayer {
  mapper: Mapper;
  details: Details;
  parent: ParentLink | undefined;
  identity: LayerIdentity;
}

const SECTOR = 512;

/** A mapper over one sparse extent, whose data runs name `file` as their source. */
async function sparseExtentMapper(
  file: BlockSource,
  cacheBytes: number,
  name: string,
): Promise<{ mapper: Mapper; header: VmdkSparseHeader; embedded: VmdkDescriptor | undefined }> {
  let header = parseVmdkSparseHeader(
    await readStructure(file, 0, SECTOR, 'VMDK sparse extent header'),
  );
  const embedded = await checkEmbeddedDescriptor(file, header, name);
  // The embedded descriptor repeats the capacity in its extent line ("RW 131072 SPARSE");
  // a header whose capacity disagrees (zeroed, say: a 0-byte disk that backs up nothing) lies.
  if (embedded && embedded.extents.length > 0) {
    const sectors = embedded.extents.reduce((sum, e) => sum + e.sectors, 0);
    if (sectors !== header.capacity) {
      throw new CorruptError(
        `${name}: capacity ${header.capacity} sectors, but the embedded descriptor's extents hold ${sectors}`,
        { structure: 'VMDK sparse extent header', offset: 0x0c, reason: 'bad-geometry' },
      );
    }
  }
  if (header.gdOffset === undefined) {
    // GD_AT_END: the footer (a header copy) sits before the end-of-stream marker.
    if (file.size < 3 * SECTOR) {
      throw new CorruptError(`${name}: stream-optimized file too short for a footer`, {
        structure: 'VMDK footer',
        reason: 'truncated',
      });
    }
    const at = file.size - 2 * SECTOR;
    const first = header;
    header = parseVmdkSparseHeader(await readStructure(file, at, SECTOR, 'VMDK footer'), at);
    if (header.capacity !== first.capacity || header.grainSize !== first.grainSize) {
      throw new CorruptError(
        `${name}: the footer's capacity or grain size differs from the header's`,
        {
          structure: 'VMDK footer',
          offset: at + 0x0c,
          reason: 'bad-geometry',
        },
      );
    }
    if (header.gdOffset === undefined) {
      throw new CorruptError(`${name}: footer has no grain directory offset`, {
        structure: 'VMDK footer',
        offset: at + 0x38,
        reason: 'missing',
      });
    }
  }
  const { grainSize, numGTEsPerGT, capacity } = header;
  const grainBytes = grainSize * SECTOR;
  const gtCoverage = numGTEsPerGT * grainBytes;
  const size = capacity * SECTOR;
  const gdEntries = Math.ceil(size / gtCoverage);
  const gdAt = header.gdOffset! * SECTOR;
  const gd = await readStructure(file, gdAt, gdEntries * 4, 'VMDK grain directory');
  const gdView = new DataView(gd.buffer, gd.byteOffset, gd.byteLength);
  const gtBytes = numGTEsPerGT * 4;
  const seen = new Set<number>();
  for (let i = 0; i < gdEntries; i++) {
    const gt = gdView.getUint32(i * 4, true) * SECTOR;
    if (gt === 0) continue;
    checkInFile(file.size, gt, gtBytes, 'VMDK grain table');
    // A grain directory longer than the capacity implies runs into the tables it points to
    // (writers place the tables right after it): the capacity field is wrong.
    if (gt < gdAt + gdEntries * 4 && gt + gtBytes > gdAt) {
      throw new CorruptError(
        `${name}: grain table at ${gt} overlaps the ${gdEntries}-entry grain directory`,
        { structure: 'VMDK grain directory', offset: gdAt + i * 4, reason: 'overlap' },
      );
    }
    if (seen.has(gt)) {
      throw new CorruptError(`grain table at ${gt} is referenced twice`, {
        structure: 'VMDK grain directory',
        offset: gdAt + i * 4,
        reason: 'overlap',
      });
    }
    seen.add(gt);
  }
  seen.clear();
  const tables = new ByteLru(cacheBytes);
  async function gte(grain: number): Promise<{ value: number; at: number }> {
    const t = Math.floor(grain / numGTEsPerGT);
    const gt = gdView.getUint32(t * 4, true) * SECTOR;
    if (gt === 0) return { value: 0, at: 0 };
    const table = await tables.get(gt, () => readStructure(file, gt, gtBytes, 'VMDK grain table'));
    const i = (grain % numGTEsPerGT) * 4;
    const value =
      (table[i]! | (table[i + 1]! << 8) | (table[i + 2]! << 16) | (table[i + 3]! << 24)) >>> 0;
    return { value, at: gt + i };
  }
  function classify(value: number, at: number, grain: number, length: number, within: number): Run {
    // GTE 0: not in this extent (the parent's grain, or zeros); 1: a zero grain.
    if (value === 0) return { kind: 'absent', length };
    if (value === 1 && header.zeroGrains) return { kind: 'zero', length };
    const host = value * SECTOR;
    if (host < SECTOR || host >= file.size) {
      throw new CorruptError(`${name}: grain ${grain} at ${host} lies outside the file`, {
        structure: 'VMDK grain table',
        offset: at,
        reason: 'out-of-range',
      });
    }
    if (!header.compressed) return { kind: 'data', length, host: host + within, source: file };
    return {
      kind: 'unit',
      length,
      key: grain * grainBytes,
      at: within,
      load: async () => {
        const head = await readStructure(file, host, 12, 'VMDK grain marker');
        const v = new DataView(head.buffer, head.byteOffset, 12);
        const lba = v.getBigUint64(0, true);
        const stored = v.getUint32(8, true);
        if (lba !== BigInt(grain * grainSize)) {
          throw new CorruptError(
            `${name}: grain marker names sector ${lba}, expected ${grain * grainSize}`,
            {
              structure: 'VMDK grain marker',
              offset: host,
              reason: 'bad-marker',
            },
          );
        }
        // Deflate never needs more than a few bytes per 16 KiB over the input size.
        if (stored === 0 || stored > grainBytes + grainBytes / 8 + 1024) {
          throw new CorruptError(`${name}: compressed grain of ${stored} bytes`, {
            structure: 'VMDK grain marker',
            offset: host + 8,
            reason: 'bad-compressed-data',
          });
        }
        const data = await readStructure(file, host + 12, stored, 'VMDK compressed grain');
        return inflateZlib(data, grainBytes, 'VMDK compressed grain', host + 12);
      },
    };
  }
  const grains = Math.ceil(size / grainBytes);
  const mapper: Mapper = {
    format: 'vmdk',
    size,
    allocationUnit: grainBytes,
    async runAt(offset, max) {
      const grain = Math.floor(offset / grainBytes);
      const within = offset - grain * grainBytes;
      const length = Math.min(max, grainBytes - within);
      const { value, at } = await gte(grain);
      return classify(value, at, grain, length, within);
    },
    async *zeroRanges() {
      for (let t = 0; t < gdEntries; t++) {
        const first = t * numGTEsPerGT;
        const count = Math.min(numGTEsPerGT, grains - first);
        if (gdView.getUint32(t * 4, true) === 0) {
          yield [first * grainBytes, count * grainBytes, true];
          continue;
        }
        for (let g = first; g < first + count; g++) {
          const { value, at } = await gte(g);
          const kind = classify(value, at, g, grainBytes, 0).kind;
          if (kind === 'zero' || kind === 'absent')
            yield [g * grainBytes, grainBytes, kind === 'absent'];
        }
      }
    },
  };
  return { mapper, header, embedded };
}

function subformatOf(header: VmdkSparseHeader): string {
  return header.compressed && header.markers ? 'streamOptimized' : 'monolithicSparse';
}

/** Open a hosted sparse extent file (monolithicSparse or streamOptimized). */
export async function openVmdkSparse(file: BlockSource, cacheBytes: number): Promise<VmdkLayer> {
  const { mapper, header, embedded } = await sparseExtentMapper(file, cacheBytes, 'VMDK');
  const parent = embedded && vmdkParentLink(embedded, 'VMDK', header.descriptorOffset * SECTOR);
  return {
    mapper,
    parent,
    identity: embedded?.cid === undefined ? {} : { cid: embedded.cid },
    details: {
      version: header.version,
      subformat: subformatOf(header),
      compressed: header.compressed,
      uncleanShutdown: header.uncleanShutdown,
    },
  };
}

/** True when `head` (the first bytes of a file) is a VMDK text descriptor. */
export function isVmdkDescriptor(head: Uint8Array): boolean {
  const text = String.fromCharCode(...head.subarray(0, 64));
  return /^\s*# Disk DescriptorFile/.test(text);
}

export interface VmdkExtent {
  access: string;
  /** Size in sectors. */
  sectors: number;
  type: 'FLAT' | 'SPARSE' | 'ZERO' | 'VMFS';
  file: string | undefined;
  /** Start of the extent inside its file, in sectors (FLAT/VMFS). */
  offset: number;
}

export interface VmdkDescriptor {
  createType: string;
  extents: VmdkExtent[];
  /** Content ID (lower-case hex): a child's `parentCID` must equal its parent's `CID`. */
  cid: string | undefined;
  /** `ffffffff` when the disk has no parent. */
  parentCID: string;
  parentFileNameHint: string | undefined;
}

/** Sources: VMware "Virtual Disk Format 5.0" §"The Descriptor File" (extent descriptions). */
export function parseVmdkDescriptor(text: string): VmdkDescriptor {
  const extents: VmdkExtent[] = [];
  let createType = '';
  let parentCID = 'ffffffff';
  let cid: string | undefined;
  let parentFileNameHint: string | undefined;
  const lines = text.split(/\r?\n/);
  if (lines.length > 10000) {
    throw new CorruptError('VMDK descriptor has too many lines', {
      structure: 'VMDK descriptor',
      reason: 'too-large',
    });
  }
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const kv = /^([A-Za-z.]+)\s*=\s*"?([^"]*)"?$/.exec(line);
    if (kv) {
      if (kv[1] === 'createType') createType = kv[2]!;
      if (kv[1] === 'parentCID') parentCID = kv[2]!.toLowerCase();
      if (kv[1] === 'CID') cid = kv[2]!.toLowerCase();
      if (kv[1] === 'parentFileNameHint') parentFileNameHint = kv[2]!;
      continue;
    }
    const ext =
      /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(VMFSSPARSE|VMFSRDM|VMFSRAW|FLAT|SPARSE|ZERO|VMFS)\b(?:\s+"([^"]*)"(?:\s+(\d+))?)?/.exec(
        line,
      );
    if (ext) {
      const type = ext[3]!;
      if (type !== 'FLAT' && type !== 'SPARSE' && type !== 'ZERO' && type !== 'VMFS') {
        throw new UnsupportedError(`VMDK extent type ${type} is not supported`, {
          structure: 'VMDK descriptor',
          reason: 'subformat',
        });
      }
      extents.push({
        access: ext[1]!,
        sectors: Number(ext[2]),
        type,
        file: ext[4],
        offset: ext[5] === undefined ? 0 : Number(ext[5]),
      });
      if (extents.length > 4096) {
        throw new CorruptError('VMDK descriptor has too many extents', {
          structure: 'VMDK descriptor',
          reason: 'too-large',
        });
      }
    }
  }
  return { createType, extents, cid, parentCID, parentFileNameHint };
}

/**
 * createTypes of delta (snapshot/redo-log) disks: their unallocated grains belong to a parent.
 * Sources: VMware "Virtual Disk Format 5.0" §"Disk Database" createType list (vmfsSparse is the
 * ESX redo log); vSphere's seSparse and vsanSparse snapshots; any type naming a delta.
 */
const DELTA_CREATE_TYPE = /delta|^vmfsSparse$|^seSparse$|^vsanSparse$/i;

/**
 * The parent link of a descriptor, if it has one. QEMU takes a `parentFileNameHint` as the
 * backing file whatever `parentCID` says (block/vmdk.c, vmdk_parent_open), so either one is a
 * parent link; the parent's `CID` must equal `parentCID` (when it is not ffffffff). A link
 * without a file name cannot be followed and is refused: reading a delta without its parent
 * would return zeros for every grain the parent holds. `where` names the file the descriptor
 * belongs to.
 */
function vmdkParentLink(
  descriptor: VmdkDescriptor,
  where: string,
  offset?: number,
): ParentLink | undefined {
  const { parentCID, parentFileNameHint, createType } = descriptor;
  const delta = DELTA_CREATE_TYPE.test(createType);
  if (parentCID === 'ffffffff' && parentFileNameHint === undefined && !delta) return undefined;
  const parent =
    parentFileNameHint === undefined
      ? 'a parent whose file it does not name'
      : `parent "${parentFileNameHint}"`;
  const why = delta ? `createType "${createType}" is a delta disk of` : 'names';
  const refusal = () =>
    new UnsupportedError(
      `${where} ${why} ${parent} (parentCID=${parentCID}); ${parentFileNameHint === undefined ? 'it cannot be followed' : 'pass resolveParent to follow it'} (or convert the chain with qemu-img convert first)`,
      {
        structure: 'VMDK descriptor',
        ...(offset === undefined ? {} : { offset }),
        reason: 'backing-file',
      },
    );
  if (parentFileNameHint === undefined) throw refusal();
  return {
    hints: [parentFileNameHint],
    kind: 'path',
    format: 'vmdk',
    structure: 'VMDK descriptor',
    expect: parentCID === 'ffffffff' ? [] : [{ field: 'cid', value: parentCID, what: 'CID' }],
    refusal,
  };
}

/** Largest embedded descriptor we read (QEMU writes 20 sectors; VMware 1..20). */
const MAX_EMBEDDED_DESCRIPTOR_SECTORS = 2048;

/** Read a sparse extent's embedded descriptor (if any) and refuse it when it names a parent. */
async function checkEmbeddedDescriptor(
  file: BlockSource,
  header: VmdkSparseHeader,
  name: string,
): Promise<VmdkDescriptor | undefined> {
  const { descriptorOffset, descriptorSize } = header;
  if (descriptorOffset === 0 || descriptorSize === 0) return undefined;
  if (descriptorSize > MAX_EMBEDDED_DESCRIPTOR_SECTORS) {
    throw new CorruptError(`${name}: embedded descriptor of ${descriptorSize} sectors`, {
      structure: 'VMDK sparse extent header',
      offset: 0x24,
      reason: 'too-large',
    });
  }
  const at = descriptorOffset * SECTOR;
  const bytes = await readStructure(file, at, descriptorSize * SECTOR, 'VMDK embedded descriptor');
  // The text ends at the first NUL; the rest of the area is padding (all zeros when unused).
  const end = bytes.indexOf(0);
  const text = new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  return parseVmdkDescriptor(text);
}

/**
 * Open a VMDK whose file is a text descriptor (monolithicFlat, twoGbMaxExtentFlat/Sparse,
 * vmfs): each extent's file is opened through `resolve`, which the caller supplies (a pure
 * package cannot open files by name).
 */
export async function openVmdkDescriptor(
  file: BlockSource,
  resolve: ((name: string) => Promise<BlockSource>) | undefined,
  cacheBytes: number,
  followParent: boolean,
): Promise<VmdkLayer> {
  const bytes = await readStructure(file, 0, file.size, 'VMDK descriptor', 64 * 1024);
  const descriptor = parseVmdkDescriptor(new TextDecoder().decode(bytes));
  const parent = vmdkParentLink(descriptor, 'VMDK descriptor');
  // Refuse before opening any extent when the parent cannot be followed.
  if (parent && !followParent) throw parent.refusal();
  const { createType, extents } = descriptor;
  if (extents.length === 0) {
    throw new CorruptError('VMDK descriptor lists no extents', {
      structure: 'VMDK descriptor',
      reason: 'missing',
    });
  }
  const parts: { start: number; size: number; mapper: Mapper }[] = [];
  let start = 0;
  for (const extent of extents) {
    const size = extent.sectors * SECTOR;
    if (!Number.isSafeInteger(start + size)) {
      throw new CorruptError('VMDK extents add up to more than 2^53 bytes', {
        structure: 'VMDK descriptor',
        reason: 'too-large',
      });
    }
    let mapper: Mapper;
    if (extent.type === 'ZERO') {
      mapper = zeroMapper(size);
    } else {
      if (extent.file === undefined) {
        throw new CorruptError(`${extent.type} extent without a file name`, {
          structure: 'VMDK descriptor',
          reason: 'missing',
        });
      }
      if (resolve === undefined) {
        throw new UnsupportedError(
          `VMDK descriptor needs extent file "${extent.file}"; pass resolveExtent to open it`,
          { structure: 'VMDK descriptor', reason: 'needs-extent-file' },
        );
      }
      const source = await resolve(extent.file);
      if (extent.type === 'SPARSE') {
        const sparse = await sparseExtentMapper(source, cacheBytes, extent.file);
        mapper = sparse.mapper;
        // An extent's embedded descriptor naming a parent the top descriptor does not: its
        // unallocated grains would read as zeros. Refused (the top descriptor governs).
        const inner = sparse.embedded && vmdkParentLink(sparse.embedded, extent.file);
        if (inner && !parent) throw inner.refusal();
        if (mapper.size < size) {
          throw new CorruptError(
            `sparse extent "${extent.file}" is smaller than the descriptor says`,
            {
              structure: 'VMDK descriptor',
              reason: 'extent-size',
            },
          );
        }
      } else {
        const at = extent.offset * SECTOR;
        checkInFile(source.size, at, size, `VMDK flat extent "${extent.file}"`);
        mapper = flatMapper(source, at, size);
      }
    }
    parts.push({ start, size, mapper });
    start += size;
  }
  return {
    mapper: concatMapper(parts, start),
    details: { subformat: createType, extents: extents.length },
    parent,
    identity: descriptor.cid === undefined ? {} : { cid: descriptor.cid },
  };
}

function zeroMapper(size: number): Mapper {
  return {
    format: 'vmdk',
    size,
    allocationUnit: SECTOR,
    async runAt(_offset, max) {
      return { kind: 'zero', length: max };
    },
    async *zeroRanges() {
      yield [0, size, false];
    },
  };
}

function flatMapper(source: BlockSource, at: number, size: number): Mapper {
  return {
    format: 'vmdk',
    size,
    allocationUnit: SECTOR,
    async runAt(offset, max) {
      return { kind: 'data', length: max, host: at + offset, source };
    },
    async *zeroRanges() {},
  };
}

/** Extents laid end to end; runs never cross an extent boundary. */
function concatMapper(
  parts: { start: number; size: number; mapper: Mapper }[],
  size: number,
): Mapper {
  const find = (offset: number) => {
    let lo = 0;
    let hi = parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (parts[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return parts[lo]!;
  };
  return {
    format: 'vmdk',
    size,
    allocationUnit: Math.max(...parts.map((p) => p.mapper.allocationUnit)),
    async runAt(offset, max) {
      const part = find(offset);
      const run = await part.mapper.runAt(
        offset - part.start,
        Math.min(max, part.start + part.size - offset),
      );
      // Keys of decoded units must be unique across extents.
      return run.kind === 'unit' ? { ...run, key: run.key + part.start } : run;
    },
    async *zeroRanges() {
      for (const part of parts) {
        for await (const [o, l, absent] of part.mapper.zeroRanges()) {
          const end = Math.min(o + l, part.size);
          if (end > o) yield [part.start + o, end - o, absent];
        }
      }
    },
  };
}

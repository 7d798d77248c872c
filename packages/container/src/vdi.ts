import { type BlockSource, CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { LayerIdentity, ParentLink } from './chain.js';
import type { Mapper } from './disk.js';
import { isPowerOfTwo, readStructure } from './read.js';
import type { ContainerReason } from './reasons.js';

// Sources: VirtualBox src/VBox/Storage/VDICore.h (VDIPREHEADER, VDIHEADER1), QEMU block/vdi.c,
// forensicswiki "Virtual Disk Image (VDI)". All numbers are little-endian. UUIDs (0x188
// uuidCreate, 0x198 uuidModify, 0x1A8 uuidLinkage, 0x1B8 uuidParentModify) are RTUUIDs, stored
// in the Microsoft mixed-endian GUID layout.
//
// The block map holds one 32-bit entry per block: the index of the block in the data area, or
// 0xFFFFFFFF (free: never written, reads as zeros) or 0xFFFFFFFE (zero: discarded, reads as
// zeros). Block n's data is at offData + index * (cbBlock + cbBlockExtra) + cbBlockExtra.

export const VDI_SIGNATURE = 0xbeda107f;
const VDI_BLOCK_FREE = 0xffffffff;
const VDI_BLOCK_ZERO = 0xfffffffe;
const VDI_TYPE_DIFF = 4;
const NULL_UUID = '00000000-0000-0000-0000-000000000000';

export interface VdiHeader {
  imageType: 'dynamic' | 'fixed' | 'differencing';
  uuidCreate: string;
  uuidModify: string;
  /** The parent's uuidCreate (uuidLinkage) and uuidModify (uuidParentModify), when it has one. */
  parent: { uuid: string; modification: string; at: number } | undefined;
  offsetBlocks: number;
  offsetData: number;
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocks: number;
}

/** Parse the 512-byte VDI pre-header and v1.1 header. */
export function parseVdiHeader(bytes: Uint8Array): VdiHeader {
  const f = new FieldReader<ContainerReason>(bytes, 'VDI header');
  if (f.u32le(0x40) !== VDI_SIGNATURE) throw f.corrupt('bad VDI signature', 0x40, 'bad-magic');
  const major = f.u16le(0x46);
  if (major !== 1) {
    throw new UnsupportedError(
      `VDI version ${major}.${f.u16le(0x44)} is not supported (only 1.x)`,
      {
        structure: 'VDI header',
        offset: 0x44,
        reason: 'version',
      },
    );
  }
  const cbHeader = f.u32le(0x48);
  if (cbHeader < 0x180 || cbHeader > 512) {
    throw f.corrupt(`header size ${cbHeader} outside 384..512`, 0x48, 'bad-header-length');
  }
  const u32Type = f.u32le(0x4c);
  // A differencing image (type 4) names its parent only by UUID: uuidLinkage is the parent's
  // uuidCreate (uuidParentModify its uuidModify). Any image with a non-null uuidLinkage is
  // treated as a child: its free blocks would read from the parent, not as zeros.
  const uuidLinkage = f.guid(0x1a8);
  const differencing = u32Type === VDI_TYPE_DIFF || uuidLinkage !== NULL_UUID;
  if (u32Type === VDI_TYPE_DIFF && uuidLinkage === NULL_UUID) {
    throw f.corrupt('differencing VDI without a parent UUID (uuidLinkage)', 0x1a8, 'missing');
  }
  if (u32Type !== 1 && u32Type !== 2 && u32Type !== VDI_TYPE_DIFF) {
    throw new UnsupportedError(`VDI image type ${u32Type} is not supported`, {
      structure: 'VDI header',
      offset: 0x4c,
      reason: 'subformat',
    });
  }
  const offBlocks = f.u32le(0x154);
  const offData = f.u32le(0x158);
  const cbDisk = f.u64le(0x170, 'cbDisk');
  const cbBlock = f.u32le(0x178);
  const cbBlockExtra = f.u32le(0x17c);
  const cBlocks = f.u32le(0x180);
  if (!isPowerOfTwo(cbBlock) || cbBlock < 512) {
    throw f.corrupt(`block size ${cbBlock} is not a power of two >= 512`, 0x178, 'bad-geometry');
  }
  if (cbBlockExtra % 512 !== 0 || cbBlockExtra > 2 ** 20) {
    throw f.corrupt(`block extra size ${cbBlockExtra} is invalid`, 0x17c, 'bad-geometry');
  }
  const need = Math.ceil(cbDisk / cbBlock);
  if (cBlocks < need) {
    throw f.corrupt(`${cBlocks} blocks cannot map ${cbDisk} bytes`, 0x180, 'table-too-small');
  }
  if (cBlocks !== need) {
    throw f.corrupt(`${cBlocks} blocks do not match ${cbDisk} bytes`, 0x180, 'bad-geometry');
  }
  if (offBlocks < 512 || offData < offBlocks + cBlocks * 4) {
    throw f.corrupt('block map and data area overlap the header or each other', 0x154, 'overlap');
  }
  return {
    imageType: u32Type === 2 ? 'fixed' : u32Type === VDI_TYPE_DIFF ? 'differencing' : 'dynamic',
    uuidCreate: f.guid(0x188),
    uuidModify: f.guid(0x198),
    parent: differencing
      ? {
          uuid: uuidLinkage,
          modification: f.guid(0x1b8),
          at: u32Type === VDI_TYPE_DIFF ? 0x4c : 0x1a8,
        }
      : undefined,
    offsetBlocks: offBlocks,
    offsetData: offData,
    diskSize: cbDisk,
    blockSize: cbBlock,
    blockExtra: cbBlockExtra,
    blocks: cBlocks,
  };
}

export async function openVdi(file: BlockSource): Promise<{
  mapper: Mapper;
  details: Record<string, string | number | boolean>;
  parent: ParentLink | undefined;
  identity: LayerIdentity;
}> {
  const header = parseVdiHeader(await readStructure(file, 0, 512, 'VDI header'));
  const { blockSize, blockExtra, offsetData, blocks } = header;
  const map = await readStructure(file, header.offsetBlocks, blocks * 4, 'VDI block map');
  // The data area holds the allocated blocks back to back. More whole blocks in it than the
  // map has entries means the size fields lie (zeroed, say, which would open as a 0-byte disk
  // and back up nothing): data the map cannot reach would be dropped.
  const stride = blockSize + blockExtra;
  const stored = file.size > offsetData ? Math.floor((file.size - offsetData) / stride) : 0;
  if (stored > blocks) {
    throw new CorruptError(
      `the data area holds ${stored} blocks but the block map has ${blocks} entries (disk size ${header.diskSize})`,
      { structure: 'VDI header', offset: 0x170, reason: 'bad-geometry' },
    );
  }
  const view = new DataView(map.buffer, map.byteOffset, map.byteLength);
  // Every data block must lie in the file, and no two map entries may share one: that would
  // alias two guest ranges. The check is one pass over the map, which we hold anyway.
  const maxIndex = Math.floor((file.size - offsetData) / stride);
  const used = new Uint8Array(Math.max(0, Math.min(blocks, maxIndex)));
  for (let i = 0; i < blocks; i++) {
    const e = view.getUint32(i * 4, true);
    if (e === VDI_BLOCK_FREE || e === VDI_BLOCK_ZERO) continue;
    const at = header.offsetBlocks + i * 4;
    if (e >= maxIndex || e >= blocks) {
      throw new CorruptError(`block ${i} maps to data block ${e}, outside the file`, {
        structure: 'VDI block map',
        offset: at,
        reason: 'out-of-range',
      });
    }
    if (used[e]) {
      throw new CorruptError(`data block ${e} is mapped twice`, {
        structure: 'VDI block map',
        offset: at,
        reason: 'overlap',
      });
    }
    used[e] = 1;
  }
  const mapper: Mapper = {
    format: 'vdi',
    size: header.diskSize,
    allocationUnit: blockSize,
    async runAt(offset, max) {
      const block = Math.floor(offset / blockSize);
      const within = offset - block * blockSize;
      const length = Math.min(max, blockSize - within);
      const e = view.getUint32(block * 4, true);
      // Free: never written here, the parent shows through; zero: discarded, reads as zeros.
      if (e === VDI_BLOCK_FREE) return { kind: 'absent', length };
      if (e === VDI_BLOCK_ZERO) return { kind: 'zero', length };
      return { kind: 'data', length, host: offsetData + e * stride + blockExtra + within };
    },
    async *zeroRanges() {
      for (let i = 0; i < blocks; i++) {
        const e = view.getUint32(i * 4, true);
        if (e === VDI_BLOCK_FREE || e === VDI_BLOCK_ZERO) {
          yield [i * blockSize, blockSize, e === VDI_BLOCK_FREE];
        }
      }
    },
  };
  const link = header.parent;
  const parent: ParentLink | undefined = link && {
    hints: [link.uuid],
    kind: 'uuid',
    format: 'vdi',
    structure: 'VDI header',
    // uuidLinkage is the parent's uuidCreate; uuidParentModify its uuidModify when the child
    // was made (VirtualBox leaves it null in some images: then only the link is checked).
    expect: [
      { field: 'uuid', value: link.uuid, what: 'uuidCreate' },
      ...(link.modification === NULL_UUID
        ? []
        : [{ field: 'modification' as const, value: link.modification, what: 'uuidModify' }]),
    ],
    refusal: () =>
      new UnsupportedError(
        `differencing VDI: its parent is the image with UUID ${link.uuid} (VDI names parents by UUID only); pass resolveParent to follow it (or convert the chain with VBoxManage clonemedium or qemu-img convert first)`,
        { structure: 'VDI header', offset: link.at, reason: 'backing-file' },
      ),
  };
  return {
    mapper,
    details: { version: '1.1', subformat: header.imageType },
    parent,
    identity: { uuid: header.uuidCreate, modification: header.uuidModify },
  };
}

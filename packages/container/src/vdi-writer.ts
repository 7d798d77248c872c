import { InvalidArgumentError } from '@diskube/core';
import { VDI_SIGNATURE } from './vdi.js';

// Sources: VirtualBox src/VBox/Storage/VDICore.h (VDIPREHEADER, VDIHEADER1, VDI_DATA_ALIGN),
// QEMU block/vdi.c (VdiHeader; what vdi_open accepts). Little-endian throughout.
//
// Pure encoders for the dynamic ("normal") VDI 1.1 images a restore writes:
//
//   0x000        pre-header and header (512 bytes)
//   0x200        block map, one u32 per 1 MiB block: data block index or 0xFFFFFFFF (free)
//   offData      data blocks of 1 MiB in the order the writer first touched them; offData is
//                aligned to 1 MiB as VirtualBox aligns it (VDI_DATA_ALIGN)
//
// QEMU only opens VDI images with 1 MiB blocks, no block extra data, 512-byte sectors and a
// disk size that is a whole number of sectors; VirtualBox writes the same.

export const VDI_WRITER_BLOCK_SIZE = 1024 * 1024;
export const VDI_BLOCK_FREE = 0xffffffff;
const VDI_HEADER_SIZE = 0x180;
const VDI_OFFSET_BLOCKS = 0x200;
const VDI_DATA_ALIGN = 1024 * 1024;
/** QEMU's VDI_DISK_SIZE_MAX: block indexes are u32 with two sentinel values. */
const VDI_MAX_BLOCKS = 0xfffffffe;

export interface VdiWriterLayout {
  /** Disk size written to the header: the requested size rounded up to a multiple of 512. */
  diskSize: number;
  blockSize: number;
  blocks: number;
  offsetBlocks: number;
  offsetData: number;
}

export function vdiWriterLayout(size: number): VdiWriterLayout {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidArgumentError(`VDI disk size ${size} is out of range`, { reason: 'size' });
  }
  const diskSize = Math.ceil(size / 512) * 512;
  const blocks = Math.ceil(diskSize / VDI_WRITER_BLOCK_SIZE);
  if (blocks > VDI_MAX_BLOCKS) {
    throw new InvalidArgumentError(`a ${diskSize}-byte disk is too large for VDI`, {
      reason: 'size',
    });
  }
  const offsetData = Math.ceil((VDI_OFFSET_BLOCKS + blocks * 4) / VDI_DATA_ALIGN) * VDI_DATA_ALIGN;
  return {
    diskSize,
    blockSize: VDI_WRITER_BLOCK_SIZE,
    blocks,
    offsetBlocks: VDI_OFFSET_BLOCKS,
    offsetData,
  };
}

/**
 * The 512-byte pre-header and header. UUIDs are 16 bytes each, in the byte order they are
 * stored (VirtualBox's RTUUID); the image UUID must be unique for VirtualBox to register the
 * disk, and the last-snapshot UUID changes on every modification.
 */
export function encodeVdiHeader(
  layout: VdiWriterLayout,
  options: { blocksAllocated: number; uuidImage: Uint8Array; uuidLastSnap: Uint8Array },
): Uint8Array {
  if (options.uuidImage.length !== 16 || options.uuidLastSnap.length !== 16) {
    throw new InvalidArgumentError('VDI UUIDs are 16 bytes', { reason: 'internal' });
  }
  const out = new Uint8Array(512);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode('<<< Oracle VM VirtualBox Disk Image >>>\n'), 0);
  view.setUint32(0x40, VDI_SIGNATURE, true);
  view.setUint32(0x44, 0x00010001, true); // version 1.1
  view.setUint32(0x48, VDI_HEADER_SIZE, true); // cbHeader
  view.setUint32(0x4c, 1, true); // u32Type: normal (dynamic)
  // 0x50 fFlags 0; 0x54 szComment[256] empty
  view.setUint32(0x154, layout.offsetBlocks, true);
  view.setUint32(0x158, layout.offsetData, true);
  // 0x15c legacy geometry (cylinders, heads, sectors) 0: the hypervisor computes its own
  view.setUint32(0x168, 512, true); // cbSector
  // 0x16c u32Dummy 0
  view.setUint32(0x170, layout.diskSize % 2 ** 32, true);
  view.setUint32(0x174, Math.floor(layout.diskSize / 2 ** 32), true);
  view.setUint32(0x178, layout.blockSize, true);
  // 0x17c cbBlockExtra 0
  view.setUint32(0x180, layout.blocks, true);
  view.setUint32(0x184, options.blocksAllocated, true);
  out.set(options.uuidImage, 0x188);
  out.set(options.uuidLastSnap, 0x198);
  // 0x1a8 uuidLinkage and 0x1b8 uuidParentModify stay zero: no parent image.
  return out;
}

/**
 * The block map, padded to whole sectors: `entries[i]` is the data block index of block `i` or
 * `VDI_BLOCK_FREE`.
 */
export function encodeVdiBlockMap(layout: VdiWriterLayout, entries: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil((layout.blocks * 4) / 512) * 512);
  const view = new DataView(out.buffer);
  for (let i = 0; i < layout.blocks; i++) {
    view.setUint32(i * 4, i < entries.length ? entries[i]! : VDI_BLOCK_FREE, true);
  }
  return out;
}

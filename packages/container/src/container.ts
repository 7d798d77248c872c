import { type BlockSource, UnsupportedError } from '@diskube/core';
import { type ContainerDisk, type ContainerFormat, mappedDisk, rawDisk } from './disk.js';
import { openQcow2 } from './qcow2.js';
import { QCOW2_MAGIC } from './qcow2-header.js';
import { readStructure } from './read.js';
import { openVdi, VDI_SIGNATURE } from './vdi.js';
import { openVhd } from './vhd.js';
import { openVhdx } from './vhdx.js';
import { isVmdkDescriptor, openVmdkDescriptor, openVmdkSparse, VMDK_SPARSE_MAGIC } from './vmdk.js';

const VMDK_COWD_MAGIC = 0x44574f43; // "COWD"

export interface ContainerInfo {
  format: ContainerFormat;
  /** Size of the virtual disk in bytes. */
  virtualSize: number;
  /** Allocation granularity in bytes (cluster, block or grain). */
  allocationUnit: number;
  /** Format details: version, subformat, compression (strings and numbers only). */
  details: Record<string, string | number | boolean>;
}

export interface OpenContainerOptions {
  /**
   * Open another file named by a VMDK descriptor (monolithicFlat, twoGbMaxExtent*): called with
   * the extent file name exactly as the descriptor writes it (relative to the descriptor).
   * Without it, a descriptor file is refused with `UnsupportedError` reason `needs-extent-file`.
   */
  resolveExtent?: (name: string) => Promise<BlockSource>;
  /** Byte budget of the metadata table cache (L2 tables, grain tables, bitmaps). Default 4 MiB. */
  cacheBytes?: number;
}

export interface OpenedContainer {
  format: ContainerFormat;
  disk: ContainerDisk;
  info: ContainerInfo;
}

/** Which container format `file` holds, by magic numbers only (`raw` when none matches). */
export async function detectContainer(file: BlockSource): Promise<ContainerFormat> {
  const head = await readStructure(file, 0, Math.min(file.size, 512), 'container header');
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const ascii = (at: number, n: number) => String.fromCharCode(...head.subarray(at, at + n));
  if (head.length >= 4 && view.getUint32(0) === QCOW2_MAGIC) return 'qcow2';
  if (head.length >= 8 && ascii(0, 8) === 'vhdxfile') return 'vhdx';
  if (head.length >= 4 && view.getUint32(0, true) === VMDK_SPARSE_MAGIC) return 'vmdk';
  if (head.length >= 4 && view.getUint32(0, true) === VMDK_COWD_MAGIC) return 'vmdk';
  if (head.length >= 0x44 && view.getUint32(0x40, true) === VDI_SIGNATURE) return 'vdi';
  if (head.length >= 8 && ascii(0, 8) === 'conectix') return 'vhd';
  if (isVmdkDescriptor(head)) return 'vmdk';
  // A fixed VHD has only its footer, in the last 512 bytes.
  if (file.size >= 1024 && file.size % 512 === 0) {
    const tail = await readStructure(file, file.size - 512, 8, 'VHD footer');
    if (String.fromCharCode(...tail) === 'conectix') return 'vhd';
  }
  return 'raw';
}

/**
 * Open the virtual disk inside a VM container file (qcow2, VDI, VMDK, VHD, VHDX), detected by
 * magic number; a file matching none is `raw` and is its own disk.
 */
export async function openContainer(
  file: BlockSource,
  options: OpenContainerOptions = {},
): Promise<OpenedContainer> {
  const cacheBytes = options.cacheBytes ?? 4 * 1024 * 1024;
  const format = await detectContainer(file);
  let disk: ContainerDisk;
  let details: Record<string, string | number | boolean> = {};
  switch (format) {
    case 'raw':
      disk = rawDisk(file);
      break;
    case 'qcow2': {
      const { mapper, header } = await openQcow2(file, cacheBytes);
      disk = mappedDisk(file, mapper);
      details = {
        version: header.version,
        compressionType: header.compressionType,
        dirty: header.dirty,
      };
      break;
    }
    case 'vdi': {
      const opened = await openVdi(file);
      disk = mappedDisk(file, opened.mapper);
      details = opened.details;
      break;
    }
    case 'vhd': {
      const opened = await openVhd(file, cacheBytes);
      disk = mappedDisk(file, opened.mapper);
      details = opened.details;
      break;
    }
    case 'vhdx': {
      const opened = await openVhdx(file);
      disk = mappedDisk(file, opened.mapper);
      details = opened.details;
      break;
    }
    case 'vmdk': {
      const head = await readStructure(file, 0, Math.min(file.size, 512), 'VMDK header');
      if (new DataView(head.buffer, head.byteOffset).getUint32(0, true) === VMDK_COWD_MAGIC) {
        // ESX hosted "COWD" sparse extents (VMFS snapshots) have their own layout.
        throw new UnsupportedError('VMDK COWD (ESX sparse) extents are not supported', {
          structure: 'VMDK header',
          offset: 0,
          reason: 'subformat',
        });
      }
      const opened = isVmdkDescriptor(head)
        ? await openVmdkDescriptor(file, options.resolveExtent, cacheBytes)
        : await openVmdkSparse(file, cacheBytes);
      disk = mappedDisk(file, opened.mapper);
      details = opened.details;
      break;
    }
  }
  return {
    format,
    disk,
    info: { format, virtualSize: disk.size, allocationUnit: disk.allocationUnit, details },
  };
}

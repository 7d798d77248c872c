import { type BlockSource, CorruptError, UnsupportedError } from '@diskube/core';
import {
  type ChainLayer,
  checkParent,
  type LayerIdentity,
  MAX_CHAIN_DEPTH,
  type ParentLink,
  type ResolveParent,
  resolveLink,
} from './chain.js';
import {
  type ContainerDisk,
  type ContainerFormat,
  type Mapper,
  mappedDisk,
  rawDisk,
} from './disk.js';
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
  /** The backing chain, overlay first, base last (one layer for an image without a parent). */
  chain: ChainLayer[];
}

export interface OpenContainerOptions {
  /**
   * Open another file named by a VMDK descriptor (monolithicFlat, twoGbMaxExtent*): called with
   * the extent file name exactly as the descriptor writes it (relative to the descriptor).
   * Without it, a descriptor file is refused with `UnsupportedError` reason `needs-extent-file`.
   */
  resolveExtent?: (name: string) => Promise<BlockSource>;
  /**
   * Open the parent an overlay names (qcow2 backing file, VMDK parent, differencing VDI, VHD,
   * VHDX), by name relative to `context.child` or, for VDI, by UUID. Without it, an image with
   * a parent is refused with `UnsupportedError` reason `backing-file`, naming the parent.
   */
  resolveParent?: ResolveParent;
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

/** What a format's opener hands back: the mapper, plus the parent link and identity if any. */
interface Layer {
  mapper: Mapper | undefined;
  details: Record<string, string | number | boolean>;
  parent?: ParentLink | undefined;
  identity?: LayerIdentity;
}

/**
 * Open the virtual disk inside a VM container file (qcow2, VDI, VMDK, VHD, VHDX), detected by
 * magic number; a file matching none is `raw` and is its own disk. An overlay's parents are
 * opened through `resolveParent` and the chain reads as one disk.
 */
export async function openContainer(
  file: BlockSource,
  options: OpenContainerOptions = {},
): Promise<OpenedContainer> {
  return openLayer(file, options, undefined, null, []);
}

async function openLayer(
  file: BlockSource,
  options: OpenContainerOptions,
  forced: ContainerFormat | undefined,
  name: string | null,
  below: BlockSource[],
): Promise<OpenedContainer & { identity: LayerIdentity }> {
  const cacheBytes = options.cacheBytes ?? 4 * 1024 * 1024;
  const format = forced ?? (await detectContainer(file));
  const layer = await openFormat(file, format, options, cacheBytes);
  let parent: (OpenedContainer & { identity: LayerIdentity }) | undefined;
  if (layer.parent) {
    const link = layer.parent;
    if (!options.resolveParent) throw link.refusal();
    if (below.length + 1 >= MAX_CHAIN_DEPTH) {
      throw new CorruptError(`backing chain deeper than ${MAX_CHAIN_DEPTH} images`, {
        structure: link.structure,
        reason: 'too-large',
      });
    }
    const resolved = await resolveLink(link, options.resolveParent, file);
    // The resolver hands back one source per file (the library's keys them by real path), so a
    // chain that comes back to a file it holds is a loop.
    if (resolved.source === file || below.includes(resolved.source)) {
      throw new CorruptError(`backing chain loops: "${resolved.name}" is already in the chain`, {
        structure: link.structure,
        reason: 'parent-loop',
      });
    }
    parent = await openLayer(
      resolved.source,
      options,
      link.format === 'raw' ? 'raw' : undefined,
      resolved.name,
      [...below, file],
    );
    checkParent(link, resolved.name, parent.format, parent.identity);
  }
  const disk = layer.mapper ? mappedDisk(file, layer.mapper, parent?.disk) : rawDisk(file);
  const identity = layer.identity ?? {};
  const here: ChainLayer = { format, name, fileSize: file.size, virtualSize: disk.size, identity };
  return {
    format,
    disk,
    identity,
    info: {
      format,
      virtualSize: disk.size,
      allocationUnit: disk.allocationUnit,
      details: layer.details,
      chain: [here, ...(parent?.info.chain ?? [])],
    },
  };
}

async function openFormat(
  file: BlockSource,
  format: ContainerFormat,
  options: OpenContainerOptions,
  cacheBytes: number,
): Promise<Layer> {
  switch (format) {
    case 'raw':
      return { mapper: undefined, details: {} };
    case 'qcow2': {
      const { mapper, header, parent } = await openQcow2(file, cacheBytes);
      return {
        mapper,
        parent,
        details: {
          version: header.version,
          compressionType: header.compressionType,
          dirty: header.dirty,
          ...(header.extendedL2 ? { extendedL2: true } : {}),
        },
      };
    }
    case 'vdi':
      return openVdi(file);
    case 'vhd':
      return openVhd(file, cacheBytes);
    case 'vhdx':
      return openVhdx(file);
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
      return isVmdkDescriptor(head)
        ? openVmdkDescriptor(
            file,
            options.resolveExtent,
            cacheBytes,
            options.resolveParent !== undefined,
          )
        : openVmdkSparse(file, cacheBytes);
    }
  }
}

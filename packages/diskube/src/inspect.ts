import type { Bitmap } from '@diskube/bitmap';
import type { ChainLayer, ContainerDisk, ContainerInfo } from '@diskube/container';
import type { BlockSource, CrossCheckReport, Tail, UsedBlocks, Warning } from '@diskube/core';
import type { DiskMap, DiskPart, Partition } from '@diskube/partition';
import { type DiskImage, type OpenImageOptions, openImage } from './image.js';
import { type MapOptions, mapImage, usedBytes } from './map.js';

/** What a filesystem driver reported, without its bitmap. */
export interface InspectedFilesystem {
  type: string;
  blockSize: number;
  blockCount: number;
  usedBlocks: number;
  tail: Tail;
  facts: Record<string, string | number | boolean | string[]>;
  /** What the `crossCheck` walk found, when one was asked for and the driver has one. */
  crossCheck: CrossCheckReport | null;
}

/** One volume of a volume group (an LVM LV): what it holds and what of it a backup keeps. */
export interface InspectedVolume {
  name: string;
  size: number;
  kind: 'filesystem' | 'swap' | 'unknown';
  content: string | null;
  label: string | null;
  usedBytes: number;
  filesystem: InspectedFilesystem | null;
  /** Offsets relative to the volume. */
  warnings: Warning[];
}

/** A volume manager's group on a partition or a whole disk (an LVM PV's VG). */
export interface InspectedVolumeGroup {
  /** `lvm2` */
  format: string;
  name: string;
  facts: Readonly<Record<string, string | number>>;
  /** Bytes kept as the manager's labels and metadata. */
  metadataBytes: number;
  volumes: InspectedVolume[];
}

/** One region of the disk: a partition, or the whole disk when it is a bare filesystem. */
export interface InspectedPart {
  /** Partition number as Linux names it, or null for a bare filesystem / unrecognised disk. */
  number: number | null;
  offset: number;
  size: number;
  /** The partition's type name (`Linux filesystem`, `EFI system`), or its raw type when unknown. */
  type: string | null;
  kind: 'filesystem' | 'swap' | 'volume-group' | 'unknown';
  /** `ext4`, `ntfs`, `swap`, `lvm2` …, or null when nothing was recognised. */
  content: string | null;
  label: string | null;
  /** Bytes of this region a backup keeps. */
  usedBytes: number;
  filesystem: InspectedFilesystem | null;
  /** The partition table entry, when there is one. */
  partition: Partition | null;
  /** For an LVM PV: the VG and each LV with what it holds and what of it is kept. */
  volumeGroup: InspectedVolumeGroup | null;
  warnings: Warning[];
}

/** Everything `diskube inspect` shows, as data: the layers of an image and what a backup keeps. */
/** One layer of the backing chain and what it holds itself. */
export interface InspectedLayer extends ChainLayer {
  /** Bytes of the virtual disk this layer stores data for (its allocated size). */
  dataBytes: number;
  /** Bytes it marks zero over its parent (qcow2 zero clusters) without storing data. */
  zeroBytes: number;
}

export interface Inspection {
  /** Size of the virtual disk in bytes. */
  size: number;
  container: ContainerInfo;
  /** The backing chain, overlay first, each layer with what it holds (one layer without a chain). */
  layers: InspectedLayer[];
  /** The granularity of `used`. */
  blockSize: number;
  blockCount: number;
  /** One bit per block of the virtual disk that a backup keeps. */
  used: Bitmap;
  /** Bytes a backup keeps, before compression and before all-zero blocks are dropped. */
  usedBytes: number;
  table: { scheme: 'mbr' | 'gpt'; sectorSize: number; partitions: number } | null;
  parts: InspectedPart[];
  /** Every layer's warnings, partition warnings prefixed with the partition. */
  warnings: Warning[];
  /** The full map (tail, table entries and driver results), for callers that need more. */
  map: DiskMap;
}

export interface InspectOptions extends MapOptions, OpenImageOptions {}

function inspectFilesystem(result: UsedBlocks | null): InspectedFilesystem | null {
  return (
    result && {
      type: result.filesystem,
      blockSize: result.blockSize,
      blockCount: result.blockCount,
      usedBlocks: result.used.count(),
      tail: result.tail,
      facts: result.facts,
      crossCheck: result.crossCheck ?? null,
    }
  );
}

function labelOf(result: UsedBlocks | null): string | null {
  const label = result?.facts.label;
  return typeof label === 'string' && label !== '' ? label : null;
}

function inspectPart(part: DiskPart): InspectedPart {
  const { result, partition, volumeGroup } = part;
  return {
    number: partition?.number ?? null,
    offset: part.offset,
    size: part.size,
    type: partition
      ? partition.typeName === 'unknown'
        ? partition.type
        : partition.typeName
      : null,
    kind: part.kind,
    content: part.content,
    label: labelOf(result),
    usedBytes: part.usedBytes,
    filesystem: inspectFilesystem(result),
    partition,
    volumeGroup: volumeGroup
      ? {
          format: volumeGroup.format,
          name: volumeGroup.name,
          facts: volumeGroup.facts,
          metadataBytes: volumeGroup.metadataBytes,
          volumes: volumeGroup.volumes.map((v) => ({
            name: v.name,
            size: v.size,
            kind: v.kind,
            content: v.content,
            label: labelOf(v.result),
            usedBytes: v.usedBytes,
            filesystem: inspectFilesystem(v.result),
            warnings: v.warnings,
          })),
        }
      : null,
    warnings: part.warnings,
  };
}

function isDiskImage(value: BlockSource | DiskImage): value is DiskImage {
  return 'container' in value && 'disk' in value;
}

/**
 * Opens an image (any `BlockSource`: a file, a `Blob` through `blobSource`, memory) or takes one
 * already opened, and describes it: container → partition table → filesystems, with the used map
 * and the warnings. Refusals (a dirty or corrupt filesystem without `fullCopyOnDoubt`) reject with
 * the driver's `DiskubeError`. An image this call opened is closed before it returns.
 */
export async function inspectImage(
  image: BlockSource | DiskImage,
  options: InspectOptions = {},
): Promise<Inspection> {
  const opened = isDiskImage(image) ? image : await openImage(image, options);
  try {
    const map = await mapImage(opened, options);
    const layers: InspectedLayer[] = [];
    let disk: ContainerDisk | undefined = opened.disk;
    for (const layer of opened.container.chain) {
      let dataBytes = 0;
      let zeroBytes = 0;
      if (disk) {
        for await (const [, length, zero] of disk.layerRanges()) {
          if (zero) zeroBytes += length;
          else dataBytes += length;
        }
      }
      layers.push({ ...layer, dataBytes, zeroBytes });
      disk = disk?.parent;
    }
    return {
      size: map.size,
      container: opened.container,
      layers,
      blockSize: map.blockSize,
      blockCount: map.blockCount,
      used: map.used,
      usedBytes: usedBytes(map),
      table: map.table && {
        scheme: map.table.scheme,
        sectorSize: map.table.sectorSize,
        partitions: map.table.partitions.length,
      },
      parts: map.parts.map(inspectPart),
      warnings: map.warnings,
      map,
    };
  } finally {
    if (opened !== image) await opened.close();
  }
}

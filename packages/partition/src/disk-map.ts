import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  DiskubeError,
  type FilesystemDriver,
  sliceSource,
  type Tail,
  type UsedBlocks,
  type UsedBlocksOptions,
  type VolumeManager,
  type Warning,
} from '@diskube/core';
import type { Partition, PartitionTable } from './partition.js';
import { probeSwap } from './swap.js';
import { findOverlaps, type Overlap, readPartitionTable } from './table.js';

/** What was found in one region of the disk, for display and for the audit trail. */
export interface DiskPart {
  /** The partition, or null when the whole disk is one filesystem (or unrecognised). */
  partition: Partition | null;
  offset: number;
  size: number;
  kind: 'filesystem' | 'swap' | 'volume-group' | 'unknown';
  /** Filesystem name for `filesystem`, `swap` for swap, the format (`lvm2`) for `volume-group`. */
  content: string | null;
  /** Bytes of this region kept in the map. */
  usedBytes: number;
  /** The driver's result, for `filesystem` parts. */
  result: UsedBlocks | null;
  /** The volume group and what is in each volume, for `volume-group` parts. */
  volumeGroup?: DiskVolumeGroup;
  warnings: Warning[];
}

/** One volume of a volume group (an LVM logical volume) and what it holds. */
export interface DiskVolume {
  name: string;
  size: number;
  kind: 'filesystem' | 'swap' | 'unknown';
  content: string | null;
  /** Bytes of the volume kept in the map. */
  usedBytes: number;
  result: UsedBlocks | null;
  /** Warnings of this volume, offsets relative to the volume. */
  warnings: Warning[];
}

/** A volume manager's group on one region: its volumes, and the bytes of its own metadata. */
export interface DiskVolumeGroup {
  format: string;
  name: string;
  facts: Readonly<Record<string, string | number>>;
  /** Bytes of the region kept as the manager's labels and metadata. */
  metadataBytes: number;
  volumes: DiskVolume[];
}

/** The used-block map of a whole disk: what a backup must keep, block by block. */
export interface DiskMap {
  size: number;
  blockSize: number;
  blockCount: number;
  used: Bitmap;
  tail: Tail;
  table: PartitionTable | null;
  parts: DiskPart[];
  warnings: Warning[];
}

export interface DiskMapOptions extends UsedBlocksOptions {
  /**
   * Volume managers (LVM2) tried on a partition, or on a whole disk without a table, that no
   * filesystem driver claims. Their volumes are mapped with the same drivers. Default none: a
   * PV is then an unknown partition, kept whole.
   */
  volumeManagers?: readonly VolumeManager[];
}

/** Map granularity for a partitioned disk: 4 KiB when every partition is 4 KiB aligned. */
function chooseBlockSize(table: PartitionTable): number {
  const aligned = table.partitions.every((p) => p.offset % 4096 === 0 && p.size % 4096 === 0);
  return aligned ? 4096 : 512;
}

/**
 * The one place a driver's refusal becomes "keep it whole" (see `assumeUsedOnDoubt` in
 * `@diskube/core`): UNSUPPORTED is always kept whole (`filesystem-unsupported`: nothing is lost by
 * copying a filesystem we cannot read); DIRTY and CORRUPT only with `assumeUsedOnDoubt`
 * (`assumed-used`); anything else (IO, a bug) is rethrown.
 */
function doubtWarning(driver: { name: string }, error: unknown, options: DiskMapOptions): Warning {
  if (!DiskubeError.isInstance(error)) throw error;
  if (error.code === 'UNSUPPORTED') {
    return {
      code: 'filesystem-unsupported',
      message: `${driver.name}: ${error.message}; kept whole`,
      ...(error.offset !== undefined ? { offset: error.offset } : {}),
    };
  }
  if ((error.code === 'DIRTY' || error.code === 'CORRUPT') && options.assumeUsedOnDoubt) {
    return {
      code: 'assumed-used',
      message: `${driver.name}: ${error.message}; kept whole`,
      ...(error.offset !== undefined ? { offset: error.offset } : {}),
      ...(error.reason !== undefined ? { reason: error.reason } : {}),
    };
  }
  throw error;
}

/** A map of `source` in `blockSize` blocks with every block and the tail kept. */
function keptWholeMap(
  source: BlockSource,
  blockSize: number,
  table: PartitionTable | null,
): DiskMap {
  const blockCount = Math.floor(source.size / blockSize);
  return {
    size: source.size,
    blockSize,
    blockCount,
    used: new Bitmap(blockCount).setAll(),
    tail: {
      offset: blockCount * blockSize,
      length: source.size - blockCount * blockSize,
      used: true,
      reason: 'last partial block of the disk, kept',
    },
    table,
    parts: [],
    warnings: [],
  };
}

/** Marks the blocks of `map` holding any of the bytes `[offset, offset + length)` as kept. */
function keepBytes(map: DiskMap, offset: number, length: number): void {
  if (length <= 0) return;
  const first = Math.floor(offset / map.blockSize);
  const end = Math.min(map.blockCount, Math.ceil((offset + length) / map.blockSize));
  if (end > first) map.used.setRange(first, end - first);
}

/** The whole disk kept as one region, with the warning that says why. */
function wholeDiskKept(source: BlockSource, warning: Warning, content: string | null = null) {
  const map = keptWholeMap(source, 4096, null);
  map.warnings.push(warning);
  map.parts.push({
    partition: null,
    offset: 0,
    size: source.size,
    kind: 'unknown',
    content,
    usedBytes: source.size,
    result: null,
    warnings: [warning],
  });
  return map;
}

async function detect(source: BlockSource, drivers: readonly FilesystemDriver[]) {
  for (const driver of drivers) {
    const probe = await driver.probe(source);
    if (probe) return driver;
  }
  return null;
}

/**
 * Computes the used map of a disk image: a bare filesystem, a partitioned disk or unknown
 * bytes. Everything the drivers cannot vouch for is kept: space outside partitions (boot
 * loaders live in the gaps), the partition tables, unknown partitions (with a warning) and
 * filesystems a driver declines as unsupported (with a warning). Linux swap keeps only its
 * header page unless it holds a hibernation image. A dirty or corrupt filesystem fails the call
 * unless `assumeUsedOnDoubt` is set, in which case it is kept whole with a warning; a bare
 * filesystem and one inside a partition table are treated alike.
 */
export async function mapDisk(
  source: BlockSource,
  drivers: readonly FilesystemDriver[],
  options: DiskMapOptions = {},
): Promise<DiskMap> {
  const whole = await detect(source, drivers);
  if (whole) {
    let result: UsedBlocks;
    try {
      result = await whole.usedBlocks(source, options);
    } catch (error) {
      // The same policy as for a filesystem inside a partition: a bare ext4 with an unknown
      // feature is kept whole exactly as it would be in a GPT partition.
      return wholeDiskKept(source, doubtWarning(whole, error, options), whole.name);
    }
    return {
      size: source.size,
      blockSize: result.blockSize,
      blockCount: result.blockCount,
      used: result.used,
      tail: result.tail,
      table: null,
      parts: [
        {
          partition: null,
          offset: 0,
          size: source.size,
          kind: 'filesystem',
          content: result.filesystem,
          usedBytes:
            result.used.count() * result.blockSize + (result.tail.used ? result.tail.length : 0),
          result,
          warnings: result.warnings,
        },
      ],
      warnings: [...result.warnings],
    };
  }

  let table: PartitionTable | null;
  try {
    table = await readPartitionTable(source);
  } catch (error) {
    // A table that contradicts itself or the image (a truncated image among them) follows the
    // same doubt policy as a filesystem: refused, or with `assumeUsedOnDoubt` the whole image
    // is kept with `assumed-used` and the table's reason.
    return wholeDiskKept(source, tableDoubtWarning(error, options));
  }
  if (!table) {
    const unrecognised: Warning = {
      code: 'unrecognised-disk',
      message: 'no filesystem or partition table recognised: the whole image is kept',
    };
    const managers = options.volumeManagers ?? [];
    // A whole disk used as an LVM PV (no table): the same region mapping as a partition's.
    for (const manager of managers) {
      if (!(await manager.probe(source))) continue;
      const region = await mapVolumeGroup(source, manager, drivers, options);
      if (!region) continue;
      const blockSize = source.size % 4096 === 0 ? 4096 : 512;
      const map = keptWholeMap(source, blockSize, null);
      map.used.clearRange(0, map.blockCount);
      for (const [offset, length] of region.keep) keepBytes(map, offset, length);
      map.parts.push(partInfo(null, 0, source.size, region));
      map.warnings.push(...region.warnings);
      return map;
    }
    return wholeDiskKept(source, unrecognised);
  }
  const blockSize = chooseBlockSize(table);
  const map = keptWholeMap(source, blockSize, table);
  const { used, blockCount } = map;
  // Overlaps are reported per partition below, with what is done about them.
  map.warnings.push(...table.warnings.filter((w) => w.code !== 'partition-overlap'));

  // A partition that overlaps another one or the table is kept whole, and only the interiors of
  // the others are cleared before what their filesystems use is set again. When two entries
  // claim the same bytes at least one of them is wrong (forged, or a partitioner's bug), and
  // nothing tells which: a forged entry over the whole disk with a swap signature would
  // otherwise clear every gap between the real partitions, and an entry over a real partition
  // whose bytes parse as another filesystem would clear what that filesystem's map calls free
  // in the other's terms. So no overlapping entry's "free" clears anything.
  const overlaps = new Map(findOverlaps(table).map((o) => [o.partition, o]));
  const keep = (offset: number, length: number) => keepBytes(map, offset, length);
  for (const p of table.partitions) {
    if (overlaps.has(p)) continue;
    const first = Math.ceil(p.offset / blockSize);
    const end = Math.min(blockCount, Math.floor((p.offset + p.size) / blockSize));
    if (end > first) used.clearRange(first, end - first);
  }

  for (const partition of table.partitions) {
    const overlap = overlaps.get(partition);
    const part = overlap
      ? await overlappingPartition(source, partition, overlap, drivers)
      : await mapPartition(source, partition, drivers, options);
    for (const [offset, length] of part.keep) keep(partition.offset + offset, length);
    map.parts.push(part.info);
    map.warnings.push(
      ...part.info.warnings.map((w) => ({
        ...w,
        message: `partition ${partition.number}: ${w.message}`,
        offset: w.offset === undefined ? partition.offset : partition.offset + w.offset,
      })),
    );
  }
  // The table's own sectors are never inside a cleared range (a partition over them overlaps),
  // but they are what makes the rest readable: set them again regardless.
  for (const [offset, length] of table.metadata) keep(offset, length);
  return map;
}

/** `doubtWarning` for an error of the partition table reader. */
function tableDoubtWarning(error: unknown, options: DiskMapOptions): Warning {
  if (!DiskubeError.isInstance(error)) throw error;
  if (error.code === 'CORRUPT' && options.assumeUsedOnDoubt) {
    return {
      code: 'assumed-used',
      message: `partition table: ${error.message}; the whole image is kept`,
      ...(error.offset !== undefined ? { offset: error.offset } : {}),
      ...(error.reason !== undefined ? { reason: error.reason } : {}),
    };
  }
  throw error;
}

/**
 * A partition that overlaps another or the table: kept whole, whatever is in it. Its content is
 * only probed, for display; its driver's map is not asked for, as it would not be used.
 */
async function overlappingPartition(
  disk: BlockSource,
  partition: Partition,
  overlap: Overlap,
  drivers: readonly FilesystemDriver[],
): Promise<{ info: DiskPart; keep: Array<[number, number]> }> {
  const source = sliceSource(disk, partition.offset, partition.size);
  const driver = await detect(source, drivers);
  const content = driver ? driver.name : (await probeSwap(source)) ? 'swap' : null;
  const other = overlap.other ? `partition ${overlap.other.number}` : 'the partition table';
  const warning: Warning = {
    code: 'partition-overlap',
    message: `overlaps ${other}: kept whole, as which entry is wrong cannot be told`,
    offset: overlap.offset - partition.offset,
  };
  return {
    info: {
      partition,
      offset: partition.offset,
      size: partition.size,
      kind: 'unknown',
      content,
      usedBytes: partition.size,
      result: null,
      warnings: [warning],
    },
    keep: [[0, partition.size]],
  };
}

/** What one region (a partition, a whole disk, a volume) holds and which of its bytes are kept. */
interface Region {
  kind: DiskPart['kind'];
  content: string | null;
  result: UsedBlocks | null;
  volumeGroup?: DiskVolumeGroup;
  warnings: Warning[];
  /** Byte ranges `[offset, length]` of the region kept. */
  keep: Array<[number, number]>;
}

/** Sum of the lengths of `ranges` after merging overlaps. */
function coveredBytes(ranges: Array<readonly [number, number]>): number {
  let total = 0;
  let end = 0;
  for (const [offset, length] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const stop = offset + length;
    if (stop <= end) continue;
    total += stop - Math.max(offset, end);
    end = stop;
  }
  return total;
}

/**
 * Maps one region: a filesystem a driver claims, else (when `managers` is given) a volume
 * group whose volumes are mapped in turn, else swap, else unknown and kept whole with `unknown`.
 */
async function mapRegion(
  source: BlockSource,
  drivers: readonly FilesystemDriver[],
  options: DiskMapOptions,
  managers: readonly VolumeManager[] | null,
  unknown: Warning,
): Promise<Region> {
  const keepWhole = (warning: Warning, content: string | null = null): Region => ({
    kind: 'unknown',
    content,
    result: null,
    warnings: [warning],
    keep: [[0, source.size]],
  });

  const driver = await detect(source, drivers);
  if (driver) {
    let result: UsedBlocks;
    try {
      result = await driver.usedBlocks(source, options);
    } catch (error) {
      return keepWhole(doubtWarning(driver, error, options), driver.name);
    }
    const keep: Array<[number, number]> = [];
    for (const [start, length] of result.used.runs()) {
      keep.push([start * result.blockSize, length * result.blockSize]);
    }
    if (result.tail.used) keep.push([result.tail.offset, result.tail.length]);
    return {
      kind: 'filesystem',
      content: result.filesystem,
      result,
      warnings: result.warnings,
      keep,
    };
  }

  for (const manager of managers ?? []) {
    if (!(await manager.probe(source))) continue;
    const group = await mapVolumeGroup(source, manager, drivers, options);
    if (group) return group;
  }

  const swap = await probeSwap(source);
  if (swap?.hibernation) {
    return keepWhole(
      {
        code: 'swap-hibernation',
        message: `swap holds a hibernation image (${swap.signature}); kept whole`,
      },
      'swap',
    );
  }
  if (swap) {
    return {
      kind: 'swap',
      content: 'swap',
      result: null,
      warnings: [],
      keep: [[0, swap.pageSize]],
    };
  }
  return keepWhole(unknown);
}

/**
 * A volume group on `source`: the manager's metadata kept, each mappable volume mapped with the
 * drivers (no nested volume managers) and its kept ranges carried back onto `source`, every
 * other volume kept whole, free space cleared. A manager's refusal follows the drivers' doubt
 * policy. Resolves null when the manager finds no label after all.
 */
async function mapVolumeGroup(
  source: BlockSource,
  manager: VolumeManager,
  drivers: readonly FilesystemDriver[],
  options: DiskMapOptions,
): Promise<Region | null> {
  let layout: Awaited<ReturnType<VolumeManager['open']>>;
  try {
    layout = await manager.open(source, options.signal ? { signal: options.signal } : {});
  } catch (error) {
    return {
      kind: 'unknown',
      content: manager.name,
      result: null,
      warnings: [doubtWarning(manager, error, options)],
      keep: [[0, source.size]],
    };
  }
  if (!layout) return null;
  const keep: Array<[number, number]> = layout.metadata.map(([o, l]) => [o, l]);
  const metadataBytes = coveredBytes(keep);
  const warnings: Warning[] = [...layout.warnings];
  const volumes: DiskVolume[] = [];
  for (const volume of layout.volumes) {
    options.signal?.throwIfAborted();
    if (!volume.source) {
      for (const [o, l] of volume.parentRanges) keep.push([o, l]);
      volumes.push({
        name: volume.name,
        size: volume.size,
        kind: 'unknown',
        content: null,
        usedBytes: volume.size,
        result: null,
        warnings: volume.keptWhole ? [volume.keptWhole] : [],
      });
      continue;
    }
    const inner = await mapRegion(volume.source, drivers, options, null, {
      code: 'unknown-volume',
      message: `no filesystem recognised; kept whole`,
    });
    const onParent = volume.toParent(inner.keep);
    keep.push(...onParent);
    volumes.push({
      name: volume.name,
      size: volume.size,
      kind: inner.kind === 'volume-group' ? 'unknown' : inner.kind,
      content: inner.content,
      usedBytes: coveredBytes(inner.keep),
      result: inner.result,
      warnings: inner.warnings,
    });
    for (const w of inner.warnings) {
      const at = w.offset === undefined ? undefined : volume.toParent([[w.offset, 1]])[0]?.[0];
      warnings.push({
        ...w,
        message: `${layout.format} volume ${volume.name}: ${w.message}`,
        ...(at === undefined ? {} : { offset: at }),
      });
    }
  }
  return {
    kind: 'volume-group',
    content: layout.format,
    result: null,
    volumeGroup: {
      format: layout.format,
      name: layout.name,
      facts: layout.facts,
      metadataBytes,
      volumes,
    },
    warnings,
    keep,
  };
}

async function mapPartition(
  disk: BlockSource,
  partition: Partition,
  drivers: readonly FilesystemDriver[],
  options: DiskMapOptions,
): Promise<{ info: DiskPart; keep: Array<[number, number]> }> {
  const source = sliceSource(disk, partition.offset, partition.size);
  const region = await mapRegion(source, drivers, options, options.volumeManagers ?? null, {
    code: 'unknown-partition',
    message: `type ${partition.type} (${partition.typeName}): no filesystem recognised; kept whole`,
  });
  return { info: partInfo(partition, partition.offset, partition.size, region), keep: region.keep };
}

function partInfo(
  partition: Partition | null,
  offset: number,
  size: number,
  region: Region,
): DiskPart {
  return {
    partition,
    offset,
    size,
    kind: region.kind,
    content: region.content,
    usedBytes: coveredBytes(region.keep),
    result: region.result,
    ...(region.volumeGroup ? { volumeGroup: region.volumeGroup } : {}),
    warnings: region.warnings,
  };
}

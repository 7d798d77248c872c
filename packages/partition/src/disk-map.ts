import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  DiskubeError,
  type FilesystemDriver,
  sliceSource,
  type Tail,
  type UsedBlocks,
  type UsedBlocksOptions,
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
  kind: 'filesystem' | 'swap' | 'unknown';
  /** Filesystem name for `filesystem`, `swap` for swap. */
  content: string | null;
  /** Bytes of this region kept in the map. */
  usedBytes: number;
  /** The driver's result, for `filesystem` parts. */
  result: UsedBlocks | null;
  warnings: Warning[];
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

export interface DiskMapOptions extends UsedBlocksOptions {}

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
function doubtWarning(driver: FilesystemDriver, error: unknown, options: DiskMapOptions): Warning {
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
    return wholeDiskKept(source, {
      code: 'unrecognised-disk',
      message: 'no filesystem or partition table recognised: the whole image is kept',
    });
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
  const keep = (offset: number, length: number) => {
    if (length <= 0) return;
    const first = Math.floor(offset / blockSize);
    const end = Math.min(blockCount, Math.ceil((offset + length) / blockSize));
    if (end > first) used.setRange(first, end - first);
  };
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

async function mapPartition(
  disk: BlockSource,
  partition: Partition,
  drivers: readonly FilesystemDriver[],
  options: DiskMapOptions,
): Promise<{ info: DiskPart; keep: Array<[number, number]> }> {
  const source = sliceSource(disk, partition.offset, partition.size);
  const base = { partition, offset: partition.offset, size: partition.size };
  const keepWhole = (warning: Warning, content: string | null = null) => ({
    info: {
      ...base,
      kind: 'unknown' as const,
      content,
      usedBytes: partition.size,
      result: null,
      warnings: [warning],
    },
    keep: [[0, partition.size]] as Array<[number, number]>,
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
      info: {
        ...base,
        kind: 'filesystem',
        content: result.filesystem,
        usedBytes: keep.reduce((sum, [, length]) => sum + length, 0),
        result,
        warnings: result.warnings,
      },
      keep,
    };
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
      info: {
        ...base,
        kind: 'swap',
        content: 'swap',
        usedBytes: swap.pageSize,
        result: null,
        warnings: [],
      },
      keep: [[0, swap.pageSize]],
    };
  }
  return keepWhole({
    code: 'unknown-partition',
    message: `type ${partition.type} (${partition.typeName}): no filesystem recognised; kept whole`,
  });
}

import type { ContainerInfo } from '@diskube/container';
import type { Warning } from '@diskube/core';
import { type DiskMap, mapDisk } from '@diskube/partition';
import { DRIVERS } from './drivers.js';
import { type OpenedImage, openImage } from './open-image.js';

export interface Analysis {
  path: string;
  container: ContainerInfo;
  map: DiskMap;
}

export interface AnalyzeOptions {
  fullCopyOnDoubt?: boolean;
  /**
   * Drop blocks the container holds no data for. Backups do (nothing to read there); `used` and
   * `inspect` do not, so they report the filesystem's view, the same for every container.
   */
  dropUnallocated?: boolean;
}

/**
 * Blocks lying wholly in ranges the container holds no data for read as zeros: they are dropped
 * from the map outright, so a sparse qcow2 or VDI costs nothing to back up there.
 */
function dropUnallocated(map: DiskMap, unallocated: Array<[number, number]>): void {
  for (const [offset, length] of unallocated) {
    const first = Math.ceil(offset / map.blockSize);
    const end = Math.min(map.blockCount, Math.floor((offset + length) / map.blockSize));
    if (end > first) map.used.clearRange(first, end - first);
  }
}

/** The one data path every command uses: container → disk → partitions → drivers → used map. */
export async function mapImage(image: OpenedImage, options: AnalyzeOptions = {}): Promise<DiskMap> {
  const map = await mapDisk(image.disk, DRIVERS, {
    assumeUsedOnDoubt: options.fullCopyOnDoubt ?? false,
  });
  if (options.dropUnallocated) dropUnallocated(map, image.unallocated);
  return map;
}

/** Opens an image and computes what a backup must keep. */
export async function analyzeImage(path: string, options: AnalyzeOptions = {}): Promise<Analysis> {
  const image = await openImage(path);
  try {
    return { path, container: image.container, map: await mapImage(image, options) };
  } finally {
    await image.close();
  }
}

/** Used byte ranges `[offset, length]` of the image, the tail included when it is kept. */
export function usedByteRanges(map: DiskMap): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const [start, length] of map.used.runs()) {
    ranges.push([start * map.blockSize, length * map.blockSize]);
  }
  if (map.tail.used && map.tail.length > 0) {
    const last = ranges.at(-1);
    if (last && last[0] + last[1] === map.tail.offset) last[1] += map.tail.length;
    else ranges.push([map.tail.offset, map.tail.length]);
  }
  return ranges;
}

export function usedBytes(map: DiskMap): number {
  return map.used.count() * map.blockSize + (map.tail.used ? map.tail.length : 0);
}

export function printWarnings(warnings: Warning[]): void {
  for (const warning of warnings) process.stderr.write(`warning: ${warning.message}\n`);
}

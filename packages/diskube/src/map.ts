import type { FilesystemDriver, VolumeManager } from '@diskube/core';
import { type DiskMap, mapDisk } from '@diskube/partition';
import { defaultDrivers, defaultVolumeManagers } from './drivers.js';
import type { DiskImage } from './image.js';

export interface MapOptions {
  /** Filesystem drivers to probe, in order. Default `defaultDrivers`. */
  drivers?: readonly FilesystemDriver[];
  /** Volume managers (LVM2) whose volumes are mapped with the drivers. Default `defaultVolumeManagers`. */
  volumeManagers?: readonly VolumeManager[];
  /**
   * When a filesystem's allocation maps cannot be trusted (DIRTY or CORRUPT), keep all of it
   * with an `assumed-used` warning instead of refusing. See `assumeUsedOnDoubt` in
   * `@diskube/core`'s `FilesystemDriver` for the whole policy.
   */
  fullCopyOnDoubt?: boolean;
  /**
   * Leave out blocks lying wholly in ranges the container holds no data for: they read as zeros,
   * so a backup need not read them. Default false: the map is then the filesystems' own view,
   * the same for a raw image and any container of it.
   */
  dropUnallocated?: boolean;
  /**
   * Also walk each filesystem's own references (inodes, MFT records) and keep any referenced
   * block its allocation map calls free, reporting it (see `crossCheck` in `@diskube/core`).
   * Costs a read of all file metadata; drivers without a walk ignore it.
   */
  crossCheck?: boolean;
  signal?: AbortSignal;
}

/**
 * The used map of an image's virtual disk: container → partition table → filesystems → one bit
 * per block a backup must keep, with the warnings of every layer. Bytes no driver vouches for
 * (gaps, tables, unknown partitions) are kept.
 */
export async function mapImage(image: DiskImage, options: MapOptions = {}): Promise<DiskMap> {
  const map = await mapDisk(image.disk, options.drivers ?? defaultDrivers, {
    assumeUsedOnDoubt: options.fullCopyOnDoubt ?? false,
    volumeManagers: options.volumeManagers ?? defaultVolumeManagers,
    ...(options.crossCheck ? { crossCheck: true } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (options.dropUnallocated && image.container.format !== 'raw') {
    // Streamed: a sparse container's range list is never held whole.
    for await (const [offset, length] of image.disk.unallocatedRanges()) {
      options.signal?.throwIfAborted();
      const first = Math.ceil(offset / map.blockSize);
      const end = Math.min(map.blockCount, Math.floor((offset + length) / map.blockSize));
      if (end > first) map.used.clearRange(first, end - first);
    }
  }
  return map;
}

/** Bytes of the disk the map keeps: used blocks, plus the tail when it is kept. */
export function usedBytes(map: DiskMap): number {
  return map.used.count() * map.blockSize + (map.tail.used ? map.tail.length : 0);
}

/** Used byte ranges `[offset, length]` of the disk in order, the tail included when kept. */
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

import type { Warning } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { type DiskMap, mapDisk } from '@diskube/partition';
import { DRIVERS } from './drivers.js';

export interface Analysis {
  path: string;
  map: DiskMap;
}

export interface AnalyzeOptions {
  fullCopyOnDoubt?: boolean;
}

/** Opens an image and computes what a backup must keep: the one data path every command uses. */
export async function analyzeImage(path: string, options: AnalyzeOptions = {}): Promise<Analysis> {
  const source = await openFileSource(path);
  try {
    const map = await mapDisk(source, DRIVERS, {
      assumeUsedOnDoubt: options.fullCopyOnDoubt ?? false,
    });
    return { path, map };
  } finally {
    await source.close();
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

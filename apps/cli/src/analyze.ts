import type { UsedBlocks, Warning } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { detectFilesystem } from './drivers.js';

export interface Analysis {
  path: string;
  size: number;
  /** null when no driver recognised the image. */
  result: UsedBlocks | null;
  /** A partition table signature seen at the start of the image, when no filesystem was. */
  partitionTable: 'mbr' | 'gpt' | null;
}

export interface AnalyzeOptions {
  fullCopyOnDoubt?: boolean;
}

/** Sniffs MBR / GPT signatures only, to tell the user what the image is. */
async function sniffPartitionTable(read: (offset: number, length: number) => Promise<Uint8Array | null>) {
  const mbr = await read(0, 512);
  if (!mbr || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return null;
  const gpt = await read(512, 8);
  if (gpt && new TextDecoder().decode(gpt) === 'EFI PART') return 'gpt' as const;
  return 'mbr' as const;
}

/** Opens an image, finds its filesystem and computes its used blocks. */
export async function analyzeImage(path: string, options: AnalyzeOptions = {}): Promise<Analysis> {
  const source = await openFileSource(path);
  try {
    const detected = await detectFilesystem(source);
    if (detected) {
      const result = await detected.driver.usedBlocks(source, {
        assumeUsedOnDoubt: options.fullCopyOnDoubt ?? false,
      });
      return { path, size: source.size, result, partitionTable: null };
    }
    const partitionTable = await sniffPartitionTable(async (offset, length) => {
      if (offset + length > source.size) return null;
      const bytes = new Uint8Array(length);
      await source.read(offset, bytes);
      return bytes;
    });
    return { path, size: source.size, result: null, partitionTable };
  } finally {
    await source.close();
  }
}

/** Used byte ranges `[offset, length]` of an analysed image, the tail included when it is used. */
export function usedByteRanges(result: UsedBlocks): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const [start, length] of result.used.runs()) {
    ranges.push([start * result.blockSize, length * result.blockSize]);
  }
  if (result.tail.used && result.tail.length > 0) {
    const last = ranges.at(-1);
    if (last && last[0] + last[1] === result.tail.offset) last[1] += result.tail.length;
    else ranges.push([result.tail.offset, result.tail.length]);
  }
  return ranges;
}

export function usedBytes(result: UsedBlocks): number {
  return result.used.count() * result.blockSize + (result.tail.used ? result.tail.length : 0);
}

export function printWarnings(warnings: Warning[]): void {
  for (const warning of warnings) process.stderr.write(`warning: ${warning.message}\n`);
}

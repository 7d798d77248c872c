import { Bitmap } from '@diskube/bitmap';
import { InvalidArgumentError } from '@diskube/core';

// The changed-ranges text format (SPEC.md §8): one `offset length` pair per line, decimal bytes
// (or 0x-prefixed hex), separated by spaces or tabs; blank lines and lines starting with `#` are
// ignored. Ranges may overlap and come in any order. This is what a hypervisor's dirty-block list
// (QEMU dirty bitmap, VMware CBT, Hyper-V RCT) is converted to.

export interface ByteRange {
  offset: number;
  length: number;
}

function parseNumber(text: string, line: number): number {
  const value = /^0x[0-9a-f]+$/i.test(text)
    ? Number.parseInt(text.slice(2), 16)
    : /^\d+$/.test(text)
      ? Number(text)
      : Number.NaN;
  if (!Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`changed ranges line ${line}: "${text}" is not a byte count`, {
      reason: 'bad-changed-ranges',
    });
  }
  return value;
}

export function parseChangedRanges(text: string): ByteRange[] {
  const ranges: ByteRange[] = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/[ \t]+/);
    if (fields.length !== 2) {
      throw new InvalidArgumentError(`changed ranges line ${k + 1}: expected "offset length"`, {
        reason: 'bad-changed-ranges',
      });
    }
    ranges.push({ offset: parseNumber(fields[0]!, k + 1), length: parseNumber(fields[1]!, k + 1) });
  });
  return ranges;
}

export function formatChangedRanges(ranges: readonly ByteRange[]): string {
  return ranges.map((r) => `${r.offset} ${r.length}\n`).join('');
}

/** The blocks touched by any byte range (a partial block counts). Ranges past the blocks are cut. */
export function rangesToBlocks(
  ranges: readonly ByteRange[],
  blockSize: number,
  blockCount: number,
): Bitmap {
  const bitmap = new Bitmap(blockCount);
  for (const r of ranges) {
    if (r.length === 0) continue;
    const first = Math.floor(r.offset / blockSize);
    const last = Math.min(blockCount, Math.ceil((r.offset + r.length) / blockSize));
    if (first < last) bitmap.setRange(first, last - first);
  }
  return bitmap;
}

/**
 * The blocks touched by any byte range as sorted, disjoint `[first, end)` block runs (ranges past
 * the blocks are cut). Costs memory per range given, not per block of the disk.
 */
export function rangesToBlockRuns(
  ranges: readonly ByteRange[],
  blockSize: number,
  blockCount: number,
): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (const r of ranges) {
    if (r.length === 0) continue;
    const first = Math.floor(r.offset / blockSize);
    const end = Math.min(blockCount, Math.ceil((r.offset + r.length) / blockSize));
    if (first < end) runs.push([first, end]);
  }
  runs.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const run of runs) {
    const last = merged.at(-1);
    if (last !== undefined && run[0] <= last[1]) last[1] = Math.max(last[1], run[1]);
    else merged.push(run);
  }
  return merged;
}

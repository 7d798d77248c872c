// The EBR chain as partitioners and the kernel know it. Oracles: `partx --show` (libblkid, whose
// EBR walk is the kernel's `parse_extended`) on the same bytes, and `sfdisk --dump` (libfdisk).
import { memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import type { PartitionReason } from './reasons.js';
import { MAX_LOGICAL_PARTITIONS, readPartitionTable } from './table.js';
import {
  errorOf,
  partxPartitions,
  putMbrEntry,
  requireTool,
  sfdiskImage,
  toolOutput,
} from './test-support.js';

const MiB = 1 << 20;
const haveTools = requireTool('sfdisk', 'fdisk') && requireTool('partx', 'util-linux');

async function rows(disk: Uint8Array) {
  const table = await readPartitionTable(memorySource(disk));
  return table!.partitions.map((p) => [p.number, p.offset / 512, p.size / 512]);
}

/** Sector numbers of the sfdisk layout below. */
const EXT = 18432;
const EBR = [18432, 28672, 34816];
const LOGICAL = [20480, 30720, 36864];

describe.runIf(haveTools)('an EBR with more than one data entry', () => {
  // Primary 1, extended 2 with three logical partitions (5, 6, 7), one EBR each.
  const standard = sfdiskImage(
    32 * MiB,
    `label: dos\nstart=2048, size=8M, type=83\nstart=${EXT}, type=5\nstart=${LOGICAL[0]}, size=4M, type=83\nstart=${LOGICAL[1]}, size=2M, type=7\nstart=${LOGICAL[2]}, size=2M, type=82\n`,
  );

  it('reads the standard chain as partx does', async () => {
    expect(await rows(standard)).toEqual(partxPartitions(standard).filter(([n]) => n !== 2));
  });

  it('reads two data slots and the link in slot 3, as the one seen in the field', async () => {
    // The first EBR now holds logical 6 itself (slot 2, relative to this EBR) and links from
    // slot 3 straight to the third EBR; the second EBR is wiped.
    const disk = standard.slice();
    putMbrEntry(disk, EBR[0]!, 1, 0x07, LOGICAL[1]! - EBR[0]!, 4096);
    putMbrEntry(disk, EBR[0]!, 2, 0x05, EBR[2]! - EXT, 6144);
    disk.fill(0, EBR[1]! * 512, EBR[1]! * 512 + 512);
    const expected = [
      [1, 2048, 16384],
      [5, LOGICAL[0], 8192],
      [6, LOGICAL[1], 4096],
      [7, LOGICAL[2], 4096],
    ];
    expect(await rows(disk)).toEqual(expected);
    // The kernel's reading (libblkid walks EBRs the same way) agrees.
    expect(partxPartitions(disk).filter(([n]) => n !== 2)).toEqual(expected);
    // libfdisk keeps one data entry per EBR and says so; it still follows the link in slot 3.
    const dump = toolOutput(disk, 'sfdisk', ['--dump']);
    expect(dump).toContain('Ignoring extra data in partition table 5');
    expect(dump).toMatch(/start=\s*36864, size=\s*4096, type=82/);
    expect(toolOutput(disk, 'fdisk', ['-l'])).toContain('Ignoring extra data in partition table 5');
    const table = await readPartitionTable(memorySource(disk));
    expect(table!.warnings).toEqual([]);
    // Both EBRs that remain are table metadata.
    expect(table!.metadata).toEqual([
      [0, 512],
      [EBR[0]! * 512, 512],
      [EBR[2]! * 512, 512],
    ]);
  });

  it('takes the link from slot 1 when DR-DOS puts it there, the data from the others', async () => {
    const disk = standard.slice();
    putMbrEntry(disk, EBR[0]!, 0, 0x05, EBR[1]! - EXT, 8192);
    putMbrEntry(disk, EBR[0]!, 3, 0x83, LOGICAL[0]! - EBR[0]!, 8192);
    putMbrEntry(disk, EBR[0]!, 1, 0, 0, 0);
    expect(await rows(disk)).toEqual(partxPartitions(disk).filter(([n]) => n !== 2));
    expect(await rows(disk)).toEqual([
      [1, 2048, 16384],
      [5, LOGICAL[0], 8192],
      [6, LOGICAL[1], 4096],
      [7, LOGICAL[2], 4096],
    ]);
  });

  it('follows the first of two links and ignores the second, with a warning', async () => {
    const disk = standard.slice();
    putMbrEntry(disk, EBR[0]!, 2, 0x0f, EBR[2]! - EXT, 6144);
    const table = await readPartitionTable(memorySource(disk));
    expect(await rows(disk)).toEqual(partxPartitions(disk).filter(([n]) => n !== 2));
    expect(table!.warnings.map((w) => [w.code, w.offset])).toEqual([
      ['ebr-entry-ignored', EBR[0]! * 512 + 0x1be + 32],
    ]);
  });

  it('ignores garbage in slot 4 that leaves the extended partition, as Linux does', async () => {
    const disk = standard.slice();
    putMbrEntry(disk, EBR[0]!, 3, 0x83, 100_000, 50);
    expect(await rows(disk)).toEqual(partxPartitions(disk).filter(([n]) => n !== 2));
    const table = await readPartitionTable(memorySource(disk));
    expect(table!.warnings.map((w) => w.code)).toEqual(['ebr-entry-ignored']);
    expect(table!.partitions).toHaveLength(4);
  });

  it('refuses a data entry in slot 2 that leaves the extended partition', async () => {
    const disk = standard.slice();
    putMbrEntry(disk, EBR[0]!, 1, 0x83, 100_000, 50);
    const error = await errorOf(readPartitionTable(memorySource(disk)));
    expect(error.code).toBe('CORRUPT');
    expect(error.reason).toBe<PartitionReason>('logical-out-of-range');
    expect(error.offset).toBe(EBR[0]! * 512 + 0x1be + 16);
  });

  it('numbers the logical partitions of a second extended partition after the first', async () => {
    // Two extended primaries (the kernel walks each; numbering continues).
    const disk = new Uint8Array(16 * MiB);
    putMbrEntry(disk, 0, 0, 0x05, 2048, 4096);
    putMbrEntry(disk, 0, 1, 0x0f, 8192, 4096);
    putMbrEntry(disk, 2048, 0, 0x83, 2048, 2048);
    putMbrEntry(disk, 8192, 0, 0x83, 2048, 2048);
    putMbrEntry(disk, 8192, 1, 0x83, 1024, 1024);
    expect(await rows(disk)).toEqual([
      [5, 4096, 2048],
      [6, 10240, 2048],
      [7, 9216, 1024],
    ]);
    expect(partxPartitions(disk).filter(([n]) => n > 4)).toEqual(await rows(disk));
  });
});

describe('EBR chains built byte by byte', () => {
  it('bounds a long chain', async () => {
    // 300 EBRs, each with a one-sector logical partition and a link to the next.
    const count = MAX_LOGICAL_PARTITIONS + 44;
    const disk = new Uint8Array((2048 + count * 4 + 8) * 512);
    putMbrEntry(disk, 0, 0, 0x05, 2048, count * 4 + 4);
    for (let i = 0; i < count; i++) {
      const ebr = 2048 + i * 4;
      putMbrEntry(disk, ebr, 0, 0x83, 1, 1);
      putMbrEntry(disk, ebr, 1, 0x05, (i + 1) * 4, 4);
    }
    const error = await errorOf(readPartitionTable(memorySource(disk)));
    expect(error.reason).toBe<PartitionReason>('ebr-chain-too-long');
  });

  it('reads all four slots as data in the last EBR', async () => {
    const disk = new Uint8Array(8 * MiB);
    putMbrEntry(disk, 0, 0, 0x05, 2048, 8192);
    for (let slot = 0; slot < 4; slot++) putMbrEntry(disk, 2048, slot, 0x83, 1 + slot * 1024, 1000);
    expect(await rows(disk)).toEqual([
      [5, 2049, 1000],
      [6, 3073, 1000],
      [7, 4097, 1000],
      [8, 5121, 1000],
    ]);
    if (haveTools) expect(partxPartitions(disk).filter(([n]) => n > 4)).toEqual(await rows(disk));
  });
});

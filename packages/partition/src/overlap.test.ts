// Overlapping partition entries, forged or buggy: no overlapping entry's "free" clears a byte.
// Tables from sgdisk/sfdisk, patched byte by byte with their CRCs recomputed (sgdisk -v checks
// that the forgery is a valid GPT that only overlaps).
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { type DiskMap, mapDisk } from './disk-map.js';
import type { Partition, PartitionTable } from './partition.js';
import { findOverlaps } from './table.js';
import {
  guidBytes,
  patchGptEntry,
  putMbrEntry,
  requireTool,
  resignGpt,
  sfdiskImage,
  sgdiskImage,
  swapHeader,
  toolOutput,
  toyDriver,
  toyFs,
} from './test-support.js';

const MiB = 1 << 20;
const LINUX_SWAP = guidBytes('0657FD6D-A4AB-43C4-84E5-0933C84B4F4F');
const LINUX_FS = guidBytes('0FC63DAF-8483-4772-8E79-3D69D8477DE4');
const haveSgdisk = requireTool('sgdisk', 'gdisk');
const haveSfdisk = requireTool('sfdisk', 'fdisk');

/** 4 KiB blocks of the map: block index of a byte offset. */
const block = (offset: number) => offset / 4096;

/** Bytes of `[offset, offset + length)` a map keeps, whatever its block size. */
function keptBytes(map: DiskMap, offset: number, length: number): number {
  return map.used.countRange(offset / map.blockSize, length / map.blockSize) * map.blockSize;
}

describe.runIf(haveSgdisk)('a GPT with a forged overlapping entry', () => {
  // 1: toy fs 1–5 MiB; a "boot loader" in the gap at 5–6 MiB; 2: toy fs 6–14 MiB;
  // 3: swap 14–18 MiB; 18 MiB to the end unpartitioned.
  const base = (() => {
    const disk = sgdiskImage(32 * MiB, [
      '-n',
      '1:2048:+4M',
      '-n',
      '2:12288:+8M',
      '-n',
      '3:28672:+4M',
      '-t',
      '3:8200',
    ]);
    toyFs(disk, 1 * MiB, [0, 9]);
    disk.fill(0xcc, 5 * MiB, 5 * MiB + 4096);
    toyFs(disk, 6 * MiB, [0, 100]);
    swapHeader(disk, 14 * MiB);
    return disk;
  })();
  const lastUsable = 32 * 2048 - 34;

  function forge(entry: { type: Uint8Array; first: number; last: number }) {
    const disk = base.slice();
    patchGptEntry(disk, 4, {
      typeGuidBytes: entry.type,
      firstLba: entry.first,
      lastLba: entry.last,
    });
    // The forgery is a well-formed GPT whose only fault is the overlap.
    const verify = toolOutput(disk, 'sgdisk', ['-v']);
    expect(verify).not.toMatch(/CRC/i);
    expect(verify).toMatch(/overlap/i);
    return disk;
  }

  const map = (disk: Uint8Array) => mapDisk(memorySource(disk), [toyDriver]);

  it('unforged: only the used blocks of each partition are kept, and the gaps', async () => {
    const result = await map(base);
    expect(result.warnings).toEqual([]);
    expect(result.used.countRange(block(1 * MiB), 256)).toBe(1 + 1); // toy blocks 0 and 9
    expect(result.used.get(block(5 * MiB))).toBe(true);
    expect(result.used.countRange(block(6 * MiB), 8 * 256)).toBe(2);
    expect(result.used.countRange(block(14 * MiB), 4 * 256)).toBe(1);
  });

  it('an entry over the whole disk with a swap signature keeps everything', async () => {
    // With every partition's free space cleared and only the forged swap's first page set again,
    // the gap at 5 MiB (and every free block) would be dropped.
    const disk = forge({ type: LINUX_SWAP, first: 34, last: lastUsable });
    swapHeader(disk, 34 * 512);
    const result = await map(disk);
    expect(result.used.count()).toBe(result.blockCount);
    expect(result.warnings.map((w) => [w.code, w.message.split(':')[0]])).toEqual([
      ['partition-overlap', 'partition 1'],
      ['partition-overlap', 'partition 2'],
      ['partition-overlap', 'partition 3'],
      ['partition-overlap', 'partition 4'],
    ]);
    expect(result.parts.map((p) => [p.partition?.number, p.kind, p.content])).toEqual([
      [1, 'unknown', 'toy'],
      [2, 'unknown', 'toy'],
      [3, 'unknown', 'swap'],
      [4, 'unknown', 'swap'],
    ]);
  });

  it('an entry over one partition and the gap after it keeps both whole, the others mapped', async () => {
    // Same start as partition 1, so it parses as the same toy fs and calls the gap after
    // partition 1 (its own "free" blocks 4–5 MiB in) free.
    const disk = forge({ type: LINUX_FS, first: 2048, last: 12287 });
    const result = await map(disk);
    const expected = new Bitmap(result.blockCount).setAll();
    expected.clearRange(block(6 * MiB), 8 * 256); // partition 2: only its used blocks
    expected.set(block(6 * MiB)); // toy blocks 0 and 100 (1 KiB) → 4 KiB blocks 0 and 25
    expected.set(block(6 * MiB) + 25);
    expected.clearRange(block(14 * MiB), 4 * 256); // 14–18 MiB: swap, first page
    expected.set(block(14 * MiB));
    expect(result.used.toRanges()).toEqual(expected.toRanges());
    expect(result.parts.map((p) => [p.partition?.number, p.kind])).toEqual([
      [1, 'unknown'],
      [2, 'filesystem'],
      [3, 'swap'],
      [4, 'unknown'],
    ]);
  });

  it('an entry over the GPT entry array keeps the array and the entry whole', async () => {
    // From LBA 2 (the primary entry array) to just before partition 1, "swap": its signature
    // lands in the bytes of unused entry 32, and the array is re-signed.
    const disk = forge({ type: LINUX_SWAP, first: 2, last: 2047 });
    swapHeader(disk, 2 * 512);
    resignGpt(disk);
    const result = await map(disk);
    expect(result.table!.warnings).toEqual([
      expect.objectContaining({ code: 'partition-overlap' }),
    ]);
    // Partition 4 starts at byte 1024: the map is in 512-byte blocks.
    expect(result.blockSize).toBe(512);
    expect(keptBytes(result, 0, MiB)).toBe(MiB);
    expect(result.warnings.map((w) => w.message)).toEqual([
      'partition 4: overlaps the partition table: kept whole, as which entry is wrong cannot be told',
    ]);
    // The others are not in doubt: partition 2 keeps its two used toy blocks (1 KiB each).
    expect(keptBytes(result, 6 * MiB, 8 * MiB)).toBe(2048);
  });

  it('the same entry over a damaged primary array: the backup is used, the primary kept', async () => {
    // Not re-signed: the primary array fails its CRC, and the backup (which lists entry 4 too)
    // is used. The damaged primary's sectors are still the table's.
    const disk = forge({ type: LINUX_SWAP, first: 2, last: 2047 });
    swapHeader(disk, 2 * 512);
    const result = await map(disk);
    expect(result.warnings.map((w) => w.code)).toEqual([
      'gpt-primary-damaged',
      'partition-overlap',
    ]);
    expect(result.used.countRange(0, block(1 * MiB))).toBe(block(1 * MiB));
  });
});

describe.runIf(haveSfdisk)('an MBR logical partition over the next EBR', () => {
  it('keeps the logical partition and the EBR; the next logical partition is still mapped', async () => {
    const disk = sfdiskImage(
      16 * MiB,
      'label: dos\nstart=2048, type=5\nstart=4096, size=4M, type=83\nstart=14336, size=2M, type=83\n',
    );
    toyFs(disk, 4096 * 512, [0]);
    toyFs(disk, 14336 * 512, [0]);
    // Logical 5 grows over the EBR of logical 6 (sector 12288) up to logical 6's start.
    putMbrEntry(disk, 2048, 0, 0x83, 2048, 14336 - 4096);
    const result = await mapDisk(memorySource(disk), [toyDriver]);
    expect(result.parts.map((p) => [p.partition?.number, p.kind])).toEqual([
      [5, 'unknown'],
      [6, 'filesystem'],
    ]);
    expect(result.used.countRange(block(4096 * 512), block((14336 - 4096) * 512))).toBe(
      block((14336 - 4096) * 512),
    );
    expect(result.used.countRange(block(14336 * 512), 512)).toBe(1);
  });
});

describe('findOverlaps', () => {
  it('flags exactly the partitions a pairwise comparison flags', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const partitions: Partition[] = Array.from({ length: 1 + random(8) }, (_, i) => ({
        number: i + 1,
        offset: random(64) * 512,
        size: (1 + random(16)) * 512,
        type: '83',
        typeName: 'Linux',
        name: 'primary',
      }));
      const metadata = Array.from(
        { length: random(3) },
        () => [random(64) * 512, (1 + random(4)) * 512] as [number, number],
      );
      const table: PartitionTable = {
        scheme: 'mbr',
        sectorSize: 512,
        partitions,
        metadata,
        warnings: [],
      };
      const ranges = [
        ...partitions.map((p) => [p.offset, p.offset + p.size, p] as const),
        ...metadata.map(([o, l]) => [o, o + l, null] as const),
      ];
      const expected = partitions.filter((p) =>
        ranges.some(([start, end, q]) => q !== p && start < p.offset + p.size && p.offset < end),
      );
      expect(
        findOverlaps(table)
          .map((o) => o.partition.number)
          .sort((a, b) => a - b),
      ).toEqual(expected.map((p) => p.number));
    }
  });
});

import { Bitmap } from '@diskube/bitmap';
import { type DiskubeError, memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { mapDisk } from './disk-map.js';
import {
  mkfsImage,
  requireTool,
  sfdiskImage,
  swapHeader,
  toyDriver,
  toyFs,
} from './test-support.js';

const MiB = 1 << 20;

const haveSfdisk = requireTool('sfdisk', 'fdisk');

describe.runIf(haveSfdisk)('mapDisk on an MBR disk', () => {
  // 1 MiB gap, 8 MiB toy fs, 4 MiB swap, extended with a 4 MiB logical toy fs and 4 MiB unknown.
  const base = sfdiskImage(
    32 * MiB,
    'label: dos\nstart=2048, size=8M, type=83\nsize=4M, type=82\nstart=26624, type=5\nstart=28672, size=1M, type=83\nstart=32768, size=1M, type=da\n',
  );

  async function map(disk: Uint8Array, assumeUsedOnDoubt = false) {
    return mapDisk(memorySource(disk), [toyDriver], { assumeUsedOnDoubt });
  }

  it('keeps gaps, tables, used fs blocks, the swap header page and unknown partitions', async () => {
    const disk = base.slice();
    toyFs(disk, 1 * MiB, [0, 1, 2, 3, 100, 2047]);
    swapHeader(disk, 9 * MiB);
    toyFs(disk, 28672 * 512, [5]);
    const result = await map(disk);
    expect(result.blockSize).toBe(4096);
    expect(result.table?.scheme).toBe('mbr');
    const expected = new Bitmap(result.blockCount);
    expected.setRange(0, 256); // the first MiB: MBR and the boot loader gap
    expected.setRange(256, 1); // toy blocks 0–3 (1 KiB) → first 4 KiB block
    expected.set(256 + 25); // toy block 100 → byte 100 KiB → 4 KiB block 25
    expected.set(256 + 511); // toy block 2047
    expected.set(9 * 256); // swap header page
    // Extended partition area outside logical partitions (EBRs live there): 13 MiB .. 14 MiB
    // and 15 MiB .. 16 MiB, and the disk after the extended partition's last logical.
    expected.setRange(13 * 256, 256);
    expected.set(14 * 256); // logical toy fs block 0 and 5 are both in its first 4 KiB... plus block 5
    expected.set(14 * 256 + 1);
    expected.setRange(15 * 256, 256);
    expected.setRange(16 * 256, 256); // unknown partition (type da) kept whole
    expected.setRange(17 * 256, result.blockCount - 17 * 256);
    expect(result.used.toRanges()).toEqual(expected.toRanges());
    expect(result.parts.map((p) => [p.partition?.number, p.kind, p.content])).toEqual([
      [1, 'filesystem', 'toy'],
      [2, 'swap', 'swap'],
      [5, 'filesystem', 'toy'],
      [6, 'unknown', null],
    ]);
    expect(result.warnings.map((w) => w.code)).toEqual(['unknown-partition']);
  });

  it('keeps a swap area holding a hibernation image whole', async () => {
    const disk = base.slice();
    toyFs(disk, 1 * MiB, [0]);
    swapHeader(disk, 9 * MiB, 'S1SUSPEND\0');
    const result = await map(disk);
    expect(result.used.countRange(9 * 256, 4 * 256)).toBe(4 * 256);
    expect(result.warnings.map((w) => w.code)).toContain('swap-hibernation');
  });

  it('refuses a corrupt filesystem unless asked to copy it whole', async () => {
    const disk = base.slice();
    toyFs(disk, 1 * MiB, [0], 1);
    await expect(map(disk)).rejects.toMatchObject({ code: 'CORRUPT' });
    const forced = await map(disk, true);
    expect(forced.used.countRange(256, 8 * 256)).toBeGreaterThan(0);
  });

  it('keeps an unsupported filesystem whole, with a warning', async () => {
    const disk = base.slice();
    toyFs(disk, 1 * MiB, [0], 2);
    const result = await map(disk);
    expect(result.used.countRange(256, 8 * 256)).toBe(8 * 256);
    expect(result.warnings.map((w) => w.code)).toContain('filesystem-unsupported');
  });
});

describe('mapDisk without a partition table', () => {
  it('uses the filesystem map directly for a bare filesystem', async () => {
    const disk = new Uint8Array(MiB);
    toyFs(disk, 0, [0, 7]);
    const result = await mapDisk(memorySource(disk), [toyDriver]);
    expect(result.blockSize).toBe(1024);
    expect(result.used.toRanges()).toEqual([
      [0, 1],
      [7, 1],
    ]);
    expect(result.table).toBeNull();
  });

  it('keeps unrecognised bytes whole, with a warning', async () => {
    const disk = new Uint8Array(MiB + 100).fill(7);
    const result = await mapDisk(memorySource(disk), [toyDriver]);
    expect(result.used.count()).toBe(result.blockCount);
    expect(result.tail).toMatchObject({ length: 100, used: true });
    expect(result.warnings[0]!.code).toBe('unrecognised-disk');
  });

  it('propagates typed errors as DiskubeErrors', async () => {
    const disk = new Uint8Array(MiB);
    toyFs(disk, 0, [0], 1);
    const error = (await mapDisk(memorySource(disk), [toyDriver]).catch((e) => e)) as DiskubeError;
    expect(error.code).toBe('CORRUPT');
    expect(error.offset).toBe(5);
  });
});

describe.runIf(haveSfdisk)('one doubt policy, bare or inside a partition table', () => {
  const base = sfdiskImage(32 * MiB, 'label: dos\nstart=2048, size=8M, type=83\n');
  // status: 2 unsupported, 3 dirty, 4 I/O failure, 5 corrupt (the driver does not absorb it).
  const bare = (status: number) => {
    const disk = new Uint8Array(MiB);
    toyFs(disk, 0, [0], status);
    return disk;
  };
  const cases: Array<[string, number, boolean, string | null, string | null]> = [
    // [what, status, assumeUsedOnDoubt, expected error code, expected warning code]
    ['unsupported', 2, false, null, 'filesystem-unsupported'],
    ['unsupported, full copy', 2, true, null, 'filesystem-unsupported'],
    ['dirty', 3, false, 'DIRTY', null],
    ['dirty, full copy', 3, true, null, 'assumed-used'],
    ['corrupt', 5, false, 'CORRUPT', null],
    ['corrupt, full copy', 5, true, null, 'assumed-used'],
    ['I/O failure', 4, false, 'IO', null],
    ['I/O failure, full copy', 4, true, 'IO', null],
  ];
  for (const [what, status, doubt, code, warning] of cases) {
    it(`${what}: bare and partitioned give the same answer`, async () => {
      const partitioned = base.slice();
      toyFs(partitioned, 1 * MiB, [0], status);
      const outcomes = await Promise.all(
        [bare(status), partitioned].map((disk) =>
          mapDisk(memorySource(disk), [toyDriver], { assumeUsedOnDoubt: doubt }).then(
            (result) => ({ result, error: null }),
            (error: DiskubeError) => ({ result: null, error }),
          ),
        ),
      );
      for (const { result, error } of outcomes) {
        if (code !== null) {
          expect(error?.code).toBe(code);
          continue;
        }
        expect(error).toBeNull();
        expect(result!.warnings.map((w) => w.code)).toContain(warning);
      }
      // Kept whole in both: every block of the bare disk, every block of the partition.
      if (code === null) {
        expect(outcomes[0]!.result!.used.count()).toBe(outcomes[0]!.result!.blockCount);
        expect(outcomes[1]!.result!.used.countRange(256, 8 * 256)).toBe(8 * 256);
      }
    });
  }
});

describe('mapDisk on a bare FAT or NTFS volume no driver claims', () => {
  const volumes: Array<[string, boolean, () => Uint8Array]> = [
    [
      'FAT16',
      requireTool('mkfs.fat', 'dosfstools'),
      () => mkfsImage(16 * MiB, 'mkfs.fat', ['-F', '16']),
    ],
    [
      'NTFS',
      requireTool('mkntfs', 'ntfs-3g'),
      () => mkfsImage(16 * MiB, 'mkntfs', ['-F', '-q', '-Q']),
    ],
  ];
  for (const [name, have, make] of volumes) {
    it.runIf(have)(`${name}: unrecognised and kept whole, not "MBR, 0 partitions"`, async () => {
      const result = await mapDisk(memorySource(make()), [toyDriver]);
      expect(result.table).toBeNull();
      expect(result.warnings.map((w) => w.code)).toEqual(['unrecognised-disk']);
      expect(result.used.count()).toBe(result.blockCount);
    });
  }
});

describe.runIf(haveSfdisk)(
  'a partition table that fails, with and without full copy on doubt',
  () => {
    const disk = sfdiskImage(8 * MiB, 'label: gpt\nstart=2048, size=4M\n');
    disk[512 + 0x30]! ^= 1; // both header copies fail their CRC
    disk[disk.length - 512 + 0x30]! ^= 1;

    it('is refused as corrupt', async () => {
      await expect(mapDisk(memorySource(disk), [toyDriver])).rejects.toMatchObject({
        code: 'CORRUPT',
        reason: 'checksum',
      });
    });

    it('keeps the whole image with assumed-used and the reason', async () => {
      const result = await mapDisk(memorySource(disk), [toyDriver], { assumeUsedOnDoubt: true });
      expect(result.used.count()).toBe(result.blockCount);
      expect(result.warnings.map((w) => [w.code, w.reason])).toEqual([
        ['assumed-used', 'checksum'],
      ]);
    });
  },
);

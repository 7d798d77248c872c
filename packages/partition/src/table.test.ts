import { CORE_REASONS, crc32, type DiskubeError, memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { PARTITION_REASONS, type PartitionReason } from './reasons.js';
import { readPartitionTable } from './table.js';
import { errorOf, mkfsImage, putMbrEntry, requireTool, sfdiskImage } from './test-support.js';

const MiB = 1 << 20;
const haveSfdisk = requireTool('sfdisk', 'fdisk');

describe('crc32', () => {
  it('matches the IEEE check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe.runIf(haveSfdisk)('MBR from sfdisk', () => {
  const disk = sfdiskImage(
    64 * MiB,
    'label: dos\nstart=2048, size=16M, type=83, bootable\nstart=34816, size=8M, type=82\nstart=51200, type=5\nstart=53248, size=4M, type=83\nstart=63488, size=2M, type=7\n',
  );

  it('lists primaries and the logical partitions of the EBR chain', async () => {
    const table = await readPartitionTable(memorySource(disk));
    expect(table?.scheme).toBe('mbr');
    expect(table!.partitions.map((p) => [p.number, p.offset, p.size, p.type, p.name])).toEqual([
      [1, 2048 * 512, 16 * MiB, '83', 'primary'],
      [2, 34816 * 512, 8 * MiB, '82', 'primary'],
      [5, 53248 * 512, 4 * MiB, '83', 'logical'],
      [6, 63488 * 512, 2 * MiB, '07', 'logical'],
    ]);
    // MBR plus one EBR per logical partition.
    expect(table!.metadata).toHaveLength(3);
  });

  it('detects a loop in the EBR chain', async () => {
    const copy = disk.slice();
    const firstEbr = 51200 * 512;
    const secondEbr = copy.subarray(firstEbr + 0x1ce + 8, firstEbr + 0x1ce + 12);
    const secondEbrOffset =
      (51200 + new DataView(secondEbr.buffer, secondEbr.byteOffset, 4).getUint32(0, true)) * 512;
    // Point the second EBR's "next" entry back at the first EBR (relative start 0 is rejected,
    // so aim at the second EBR itself).
    const view = new DataView(copy.buffer);
    view.setUint8(secondEbrOffset + 0x1ce + 4, 5);
    view.setUint32(secondEbrOffset + 0x1ce + 8, secondEbrOffset / 512 - 51200, true);
    view.setUint32(secondEbrOffset + 0x1ce + 12, 2048, true);
    const error = await errorOf(readPartitionTable(memorySource(copy)));
    expect(error.code).toBe('CORRUPT');
    expect(error.reason).toBe('ebr-loop');
    expect(error.offset).toBe(secondEbrOffset);
  });

  it('reports a damaged EBR signature with its offset', async () => {
    const copy = disk.slice();
    copy[51200 * 512 + 510] = 0;
    const error = await errorOf(readPartitionTable(memorySource(copy)));
    expect(error.code).toBe('CORRUPT');
    expect(error.structure).toBe('extended boot record');
    expect(error.offset).toBe(51200 * 512);
  });

  it('reports entries that leave the disk as a truncated image, never a crash', async () => {
    const error = await errorOf(readPartitionTable(memorySource(disk.subarray(0, 20 * MiB))));
    expect(error.code).toBe('CORRUPT');
    expect(error.reason).toBe<PartitionReason>('partition-truncated');
    expect(error.message).toContain('partition 2 ');
  });

  it('treats an entry covering the MBR itself as "no partition table"', async () => {
    const copy = disk.slice();
    copy.fill(0, 0x1be + 8, 0x1be + 12); // partition 1 now starts at LBA 0
    expect(await readPartitionTable(memorySource(copy))).toBeNull();
  });
});

describe.runIf(haveSfdisk)('GPT from sfdisk', () => {
  const disk = sfdiskImage(
    64 * MiB,
    'label: gpt\nstart=2048, size=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\nsize=32M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\nsize=8M, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n',
  );

  it('reads the primary header and entries', async () => {
    const table = await readPartitionTable(memorySource(disk));
    expect(table?.scheme).toBe('gpt');
    expect(table!.warnings).toEqual([]);
    expect(table!.partitions.map((p) => [p.number, p.offset, p.size, p.typeName, p.name])).toEqual([
      [1, 1 * MiB, 8 * MiB, 'EFI system', 'EFI'],
      [2, 9 * MiB, 32 * MiB, 'Linux filesystem', 'root'],
      [3, 41 * MiB, 8 * MiB, 'Linux swap', ''],
    ]);
  });

  it('falls back to the backup header when the primary fails its CRC, with a warning', async () => {
    const copy = disk.slice();
    copy[512 + 0x30]! ^= 0x01; // last usable LBA, covered by the header CRC
    const table = await readPartitionTable(memorySource(copy));
    expect(table!.warnings.map((w) => w.code)).toEqual(['gpt-primary-damaged']);
    expect(table!.partitions).toHaveLength(3);
  });

  it('falls back when the primary entry array is damaged', async () => {
    const copy = disk.slice();
    copy[1024 + 128 + 0x38]! ^= 0xff; // a byte of entry 2's name
    const table = await readPartitionTable(memorySource(copy));
    expect(table!.warnings[0]!.code).toBe('gpt-primary-damaged');
    expect(table!.partitions[1]!.name).toBe('root');
  });

  it('fails with the primary error when both copies are damaged', async () => {
    const copy = disk.slice();
    copy[512 + 0x30]! ^= 0x01;
    copy[copy.length - 512 + 0x30]! ^= 0x01;
    const error = await errorOf(readPartitionTable(memorySource(copy)));
    expect(error.code).toBe('CORRUPT');
    expect(error.reason).toBe<PartitionReason>('checksum');
    expect(error.structure).toBe('GPT header');
  });

  it('refuses a header claiming a huge entry array before allocating it', async () => {
    const copy = disk.slice();
    const view = new DataView(copy.buffer);
    for (const header of [512, copy.length - 512]) {
      view.setUint32(header + 0x50, 0x10000000, true);
      // Re-sign the header so that the size check, not the CRC, is what stops it.
      view.setUint32(header + 0x10, 0, true);
      view.setUint32(header + 0x10, crc32(copy.subarray(header, header + 92)), true);
    }
    const error = await errorOf(readPartitionTable(memorySource(copy)));
    expect(error.reason).toBe<PartitionReason>('too-large');
  });

  it('survives truncation at many offsets with null or a typed error', async () => {
    for (const cut of [0, 100, 512, 600, 1024, 5000, 17408, MiB, 30 * MiB, disk.length - 1]) {
      try {
        await readPartitionTable(memorySource(disk.subarray(0, cut)));
      } catch (error) {
        expect((error as DiskubeError).code).toMatch(/CORRUPT|IO/);
        expect([...PARTITION_REASONS, ...CORE_REASONS]).toContain((error as DiskubeError).reason);
      }
    }
  });
});

describe('no partition table', () => {
  it('returns null on zeros and on a boot sector with invalid status bytes', async () => {
    expect(await readPartitionTable(memorySource(new Uint8Array(4096)))).toBeNull();
    const boot = new Uint8Array(4096);
    boot[510] = 0x55;
    boot[511] = 0xaa;
    boot[0x1be] = 0x12; // not 0x00 / 0x80
    expect(await readPartitionTable(memorySource(boot))).toBeNull();
  });
});

describe('a bare filesystem whose boot sector ends in 0x55AA', () => {
  const haveMkfsFat = requireTool('mkfs.fat', 'dosfstools');
  const haveMkntfs = requireTool('mkntfs', 'ntfs-3g');
  const volumes: Array<[string, boolean, () => Uint8Array]> = [
    ['FAT12', haveMkfsFat, () => mkfsImage(4 * MiB, 'mkfs.fat', ['-F', '12'])],
    ['FAT16', haveMkfsFat, () => mkfsImage(16 * MiB, 'mkfs.fat', ['-F', '16'])],
    ['FAT32', haveMkfsFat, () => mkfsImage(40 * MiB, 'mkfs.fat', ['-F', '32'])],
    ['NTFS', haveMkntfs, () => mkfsImage(16 * MiB, 'mkntfs', ['-F', '-q', '-Q'])],
  ];
  for (const [name, have, make] of volumes) {
    it.runIf(have)(`${name}: no partition table, not "MBR with 0 partitions"`, async () => {
      const volume = make();
      // The premise: a signed sector whose four "entries" are all zero.
      expect([volume[510], volume[511]]).toEqual([0x55, 0xaa]);
      expect(volume.subarray(0x1be, 0x1fe).every((b) => b === 0)).toBe(true);
      expect(await readPartitionTable(memorySource(volume))).toBeNull();
    });
  }

  it.runIf(haveMkfsFat)(
    'a FAT boot sector with a partition entry is still read as an MBR',
    async () => {
      const volume = mkfsImage(16 * MiB, 'mkfs.fat', ['-F', '16']);
      putMbrEntry(volume, 0, 0, 0x83, 2048, 4096);
      const table = await readPartitionTable(memorySource(volume));
      expect(table?.partitions.map((p) => p.offset)).toEqual([2048 * 512]);
    },
  );

  it('exFAT (its BPB area is zero; told by its OEM name): no partition table', async () => {
    // Main boot sector per the exFAT specification §3.1: JumpBoot EB 76 90, "EXFAT   ".
    const volume = new Uint8Array(MiB);
    volume.set([0xeb, 0x76, 0x90, ...new TextEncoder().encode('EXFAT   ')]);
    volume[0x6c] = 9; // BytesPerSectorShift
    volume[510] = 0x55;
    volume[511] = 0xaa;
    expect(await readPartitionTable(memorySource(volume))).toBeNull();
  });

  it('an MBR with no partitions and boot code that is not a BPB stays an MBR', async () => {
    // GRUB's boot.img starts EB 63 90 and keeps the BPB area zero on a partitioned disk.
    const disk = new Uint8Array(MiB);
    disk.set([0xeb, 0x63, 0x90]);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    const table = await readPartitionTable(memorySource(disk));
    expect(table).toMatchObject({ scheme: 'mbr', partitions: [] });
  });
});

import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools(
  'mke2fs',
  'debugfs',
  'e2fsck',
  'mkntfs',
  'ntfsfix',
  'ntfscat',
  'sfdisk',
  'gcc',
  'mkfs.vfat',
  'fsck.vfat',
  'mcopy',
  'mkfs.xfs',
  'xfs_db',
  'xfs_repair',
);

// Every spec prefills random bytes and deletes a file, so free blocks hold stale data.
const CASES: Array<[string, string]> = [
  [
    'ext2, 1 KiB blocks',
    `disk 40M
  filesystem ext2 block=1K
    prefill random seed=11
    file /etc/hostname "vm-01"
    file /data/big 6M random seed=2
    files /many 200 small
    file /stale 4M random seed=99
    delete /stale`,
  ],
  [
    'ext3',
    `disk 48M
  filesystem ext3
    prefill random seed=12
    file /data/log.txt 3M text
    file /stale 5M random seed=98
    delete /stale`,
  ],
  [
    'ext4 defaults',
    `disk 64M
  filesystem ext4 label=root
    prefill random seed=13
    file /etc/hostname "vm-01"
    file /data/blob 8M random seed=1
    file /data/log.txt 4M text
    files /many 300 small
    delete /data/blob`,
  ],
  [
    'NTFS, 4 KiB clusters',
    `disk 64M
  filesystem ntfs cluster=4K label=win
    prefill random seed=14
    file /Users/a/doc.txt 2M text
    file /Users/a/big.bin 6M random seed=3
    files /many 200 small
    file /stale 4M random seed=97
    delete /stale`,
  ],
  [
    'GPT disk: ext4, NTFS, swap and unknown random data',
    `disk 160M gpt
  partition 56M ext4
    prefill random seed=15
    file /etc/fstab "UUID=x / ext4 defaults 0 1"
    file /var/big 8M random seed=4
    file /stale 8M random seed=96
    delete /stale
  partition 48M ntfs
    prefill random seed=16
    file /data/report.txt 1M text
  partition 16M swap
  partition rest raw
    prefill random seed=17`,
  ],
  [
    'FAT16, 2 KiB clusters',
    `disk 32M
  filesystem fat fat=16 cluster=2K label=STICK
    prefill random seed=18
    file /photos/a.jpg 3M random seed=5
    files /docs 100 small
    file /stale 4M random seed=95
    delete /stale`,
  ],
  [
    'UEFI GPT disk: EFI system partition (FAT32), ext4 root, swap',
    `disk 128M gpt
  partition 40M fat fat=32 cluster=512 type=efi name="EFI system partition"
    prefill random seed=19
    file /EFI/BOOT/BOOTX64.EFI 900K random seed=6
    file /EFI/debian/grub.cfg "search --fs-uuid --set=root x"
    file /stale.efi 2M random seed=94
    delete /stale.efi
  partition 64M ext4
    prefill random seed=20
    file /etc/fstab "UUID=x / ext4 defaults 0 1"
    file /usr/lib/big 6M random seed=7
    file /stale 4M random seed=93
    delete /stale
  partition rest swap`,
  ],
  [
    'XFS (v5), 1 KiB blocks',
    `disk 96M
  filesystem xfs block=1K label=data
    prefill random seed=21
    file /srv/big 6M random seed=8
    files /many 300 small
    file /stale 4M random seed=92
    delete /stale`,
  ],
  [
    'UEFI GPT disk: EFI system partition (FAT32), XFS root, ext4 /home, swap',
    `disk 256M gpt
  partition 40M fat fat=32 cluster=512 type=efi name="EFI system partition"
    prefill random seed=22
    file /EFI/BOOT/BOOTX64.EFI 900K random seed=9
    file /stale.efi 2M random seed=91
    delete /stale.efi
  partition 120M xfs name=root
    prefill random seed=23
    file /etc/fstab "UUID=x / xfs defaults 0 0"
    file /usr/lib/big 8M random seed=10
    files /etc/conf.d 100 small
    file /stale 6M random seed=90
    delete /stale
  partition 48M ext4 name=home
    prefill random seed=24
    file /user/notes.txt 1M text
  partition rest swap`,
  ],
];

describe.runIf(have)('backup and restore round trips', () => {
  for (const [name, spec] of CASES) {
    it(`${name}: restores every file, fsck-clean, stale bytes dropped`, async () => {
      const { image, manifest } = await buildImage(spec);
      const dir = await scratch();
      const backup = join(dir, 'snap.dkb');
      const restored = join(dir, 'restored.img');

      const used = await diskubeJson<{ ranges: Array<[number, number]>; usedBytes: number }>([
        'used',
        image,
      ]);
      const summary = await diskubeJson<{ storedBytes: number; usedBytes: number }>([
        'backup',
        image,
        backup,
      ]);
      expect(summary.usedBytes).toBe(used.usedBytes);
      expect((await diskube(['verify', backup])).code).toBe(0);
      await diskubeJson(['restore', backup, restored]);

      const { droppedNonZeroBytes } = await compareMasked(image, restored, used.ranges);
      expect(
        droppedNonZeroBytes,
        'the original had stale data outside the used ranges',
      ).toBeGreaterThan(0);
      const files = await expectFilesystemsIntact(restored, manifest, dir);
      expect(files).toBeGreaterThan(0);
    });
  }
});

describe.runIf(have)('inspect', () => {
  it('draws the disk: table, partitions and what each holds, with used counts', async () => {
    const { image, manifest } = await buildImage(CASES[4]![1]);
    type Part = {
      kind: string;
      content: string | null;
      offset: number;
      usedBytes: number;
      size: number;
    };
    const json = await diskubeJson<{
      partitionTable: { scheme: string };
      parts: Part[];
      container: { format: string };
    }>(['inspect', image]);
    expect(json.container.format).toBe('raw');
    expect(json.partitionTable.scheme).toBe('gpt');
    expect(json.parts.map((p) => [p.kind, p.content])).toEqual([
      ['filesystem', 'ext4'],
      ['filesystem', 'ntfs'],
      ['swap', 'swap'],
      ['unknown', null],
    ]);
    expect(json.parts.map((p) => p.offset)).toEqual(manifest.partitions.map((p) => p.offset));
    // The filesystems use a fraction of their partitions; unknown data is kept whole.
    expect(json.parts[0]!.usedBytes).toBeLessThan(json.parts[0]!.size / 2);
    expect(json.parts[3]!.usedBytes).toBe(json.parts[3]!.size);
    const text = await diskube(['inspect', image]);
    expect(text.stdout).toMatch(/table\s+GPT, 4 partitions/);
    expect(text.stdout).toMatch(/Linux swap\s+swap/);
  });
});

import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { FEDORA_DISK, UBUNTU_LVM_DISK } from './guests.js';
import { expectFilesystemsIntact } from './images.js';
import { diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools(
  'qemu-img',
  'mke2fs',
  'mkntfs',
  'sfdisk',
  'gcc',
  'losetup',
  'pvcreate',
  'vgcfgrestore',
  'mkswap',
  'mkfs.vfat',
  'mkfs.btrfs',
);

const DISKS: Array<[string, string]> = [
  [
    'GPT: FAT EFI, ext4 root, swap',
    `disk 96M gpt
  partition 16M fat type=efi
    file /EFI/BOOT/BOOTX64.EFI 200K random seed=30
  partition 48M ext4
    prefill random seed=31
    file /etc/os-release "NAME=demo"
    file /var/big 6M random seed=32
    file /stale 6M random seed=33
    delete /stale
  partition rest swap`,
  ],
  [
    'MBR: NTFS, extended with ext4 and an unknown random partition',
    `disk 112M mbr
  partition 40M ntfs
    prefill random seed=34
    file /Windows/notes.txt 1M text
  extended rest
    partition 40M ext4
      file /home/u/data.bin 4M random seed=35
    partition rest raw
      prefill random seed=36`,
  ],
  ['Ubuntu-like LVM: BIOS boot, ESP, PV with ext4 root and swap LVs', UBUNTU_LVM_DISK],
  ['Fedora-like: ESP, ext4 /boot, btrfs root', FEDORA_DISK],
];

const FORMATS: Array<[string, string[]]> = [
  ['qcow2', ['-O', 'qcow2']],
  ['qcow2 compressed', ['-O', 'qcow2', '-c']],
  ['vdi', ['-O', 'vdi']],
  ['vmdk sparse', ['-O', 'vmdk', '-o', 'subformat=monolithicSparse']],
  ['vmdk streamOptimized', ['-O', 'vmdk', '-o', 'subformat=streamOptimized']],
  // force_size keeps the exact size; without it qemu rounds VHD up to a CHS geometry.
  ['vhd', ['-O', 'vpc', '-o', 'subformat=dynamic,force_size=on']],
  ['vhdx', ['-O', 'vhdx']],
];

type Used = { ranges: Array<[number, number]>; usedBytes: number };

describe.runIf(have)('whole disks inside VM containers', () => {
  for (const [name, spec] of DISKS) {
    // Seven conversions, backups and restores of a disk of up to 320 MiB.
    it(`${name}: used ranges and restores match the raw disk in every container`, {
      timeout: 400_000,
    }, async () => {
      const { image, manifest } = await buildImage(spec);
      const dir = await scratch();
      const rawUsed = await diskubeJson<Used>(['used', image]);
      await diskubeJson(['backup', image, join(dir, 'raw.dkb')]);
      await diskubeJson(['restore', join(dir, 'raw.dkb'), join(dir, 'raw.img')]);
      await expectFilesystemsIntact(join(dir, 'raw.img'), manifest, dir);
      const expected = await readFile(join(dir, 'raw.img'));

      for (const [format, args] of FORMATS) {
        const file = join(dir, `disk.${format.replace(/ /g, '-')}`);
        execFileSync('qemu-img', ['convert', '-f', 'raw', ...args, image, file]);
        const used = await diskubeJson<Used>(['used', file]);
        expect(used.ranges, format).toEqual(rawUsed.ranges);
        const backup = `${file}.dkb`;
        await diskubeJson(['backup', file, backup]);
        await diskubeJson(['restore', backup, `${file}.img`]);
        expect(Buffer.compare(await readFile(`${file}.img`), expected), format).toBe(0);
      }
    });
  }
});

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools(
  'mkfs.btrfs',
  'btrfs',
  'mke2fs',
  'e2fsck',
  'debugfs',
  'mkfs.vfat',
  'fsck.vfat',
  'mcopy',
  'sfdisk',
  'qemu-img',
);

// Fedora's default layout, shrunk (mkfs.btrfs needs 109 MiB): an ESP, an ext4 /boot and a btrfs
// root. Free space holds random bytes (mkimage prefills and mkfs.btrfs -K keeps them).
// mkfs.btrfs --rootdir makes no subvolumes on this btrfs-progs, so the root is one tree.
const FEDORA = `disk 320M gpt
  partition 32M fat type=efi
    file /EFI/fedora/shimx64.efi 300K random seed=60
  partition 64M ext4 name=boot
    prefill random seed=61
    file /vmlinuz 6M random seed=62
    file /stale 4M random seed=63
    delete /stale
  partition rest btrfs label=fedora
    prefill random seed=64
    file /etc/fedora-release "Fedora release 41"
    file /usr/lib/big 12M random seed=65
    files /etc/conf.d 200 small
    file /var/log/messages 2M text`;

type Part = {
  number: number;
  kind: string;
  content: string | null;
  size: number;
  usedBytes: number;
};

describe.runIf(have)('a Fedora-like disk through the binary', () => {
  it('ESP, ext4 /boot, btrfs root: inspect, backup keeps what is used, restore checks clean', async () => {
    const { image, manifest } = await buildImage(FEDORA);
    const dir = await scratch();
    const inspection = await diskubeJson<{ parts: Part[]; usedBytes: number }>(['inspect', image]);
    expect(inspection.parts.map((p) => [p.kind, p.content])).toEqual([
      ['filesystem', 'fat16'],
      ['filesystem', 'ext4'],
      ['filesystem', 'btrfs'],
    ]);
    const root = inspection.parts[2]!;
    expect(root.usedBytes).toBeLessThan(root.size / 3);

    const used = await diskubeJson<{ ranges: Array<[number, number]>; usedBytes: number }>([
      'used',
      image,
    ]);
    const backup = join(dir, 'snap.dkb');
    const restored = join(dir, 'restored.img');
    await diskubeJson(['backup', image, backup]);
    expect((await diskube(['verify', backup])).code).toBe(0);
    await diskubeJson(['restore', backup, restored]);
    const { droppedNonZeroBytes } = await compareMasked(image, restored, used.ranges);
    expect(droppedNonZeroBytes, 'stale bytes were dropped').toBeGreaterThan(0);
    expect(await expectFilesystemsIntact(restored, manifest, dir)).toBeGreaterThan(200);

    const qcow2 = join(dir, 'vm.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', image, qcow2]);
    expect(
      (await diskubeJson<{ ranges: Array<[number, number]> }>(['used', qcow2])).ranges,
    ).toEqual(used.ranges);
    console.log(
      `Fedora-like: btrfs root ${root.size} bytes, kept ${root.usedBytes} (${((100 * root.usedBytes) / root.size).toFixed(1)}%)`,
    );
  });
});

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { FEDORA_DISK } from './guests.js';
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

type Part = {
  number: number;
  kind: string;
  content: string | null;
  size: number;
  usedBytes: number;
};

describe.runIf(have)('a Fedora-like disk through the binary', () => {
  it('ESP, ext4 /boot, btrfs root (subvolumes root and home, zstd): inspect, backup keeps what is used, restore checks clean', async () => {
    const { image, manifest } = await buildImage(FEDORA_DISK);
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

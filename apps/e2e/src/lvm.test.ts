import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { vgcfgBackup } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { RHEL_LVM_DISK, UBUNTU_LVM_DISK } from './guests.js';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools(
  'losetup',
  'pvcreate',
  'vgcfgrestore',
  'vgcfgbackup',
  'lvs',
  'mke2fs',
  'e2fsck',
  'debugfs',
  'mkswap',
  'mkfs.vfat',
  'fsck.vfat',
  'mcopy',
  'mkfs.xfs',
  'xfs_db',
  'xfs_repair',
  'sfdisk',
  'qemu-img',
);

// Default server installs, shrunk: every LV prefilled with random bytes and a file deleted, so
// free blocks hold stale data; the PV keeps free extents.
const DISKS: Array<[string, string]> = [
  ['Ubuntu-like: BIOS boot, ESP, LVM PV with ext4 root and a swap LV', UBUNTU_LVM_DISK],
  [
    'RHEL-like: ESP, XFS /boot, LVM PV with XFS root, swap and an XFS /home in two segments',
    RHEL_LVM_DISK,
  ],
];

type Used = { ranges: Array<[number, number]>; usedBytes: number };
type Part = {
  number: number;
  kind: string;
  content: string | null;
  size: number;
  usedBytes: number;
  volumeGroup: {
    name: string;
    volumes: Array<{ name: string; kind: string; content: string | null; usedBytes: number }>;
  } | null;
};

describe.runIf(have)('LVM guests through the binary', () => {
  for (const [name, spec] of DISKS) {
    it(`${name}: inspect draws the LVs; backup keeps what they use; restore fscks clean with the same VG`, async () => {
      const { image, manifest } = await buildImage(spec);
      const dir = await scratch();
      const pv = manifest.partitions.find((p) => p.fs === 'lvm')!;

      const inspection = await diskubeJson<{ parts: Part[]; usedBytes: number }>([
        'inspect',
        image,
      ]);
      const part = inspection.parts.find((p) => p.number === pv.index)!;
      expect(part.kind).toBe('volume-group');
      expect(part.volumeGroup!.name).toBe(pv.options.vg);
      expect(part.volumeGroup!.volumes.map((v) => [v.name, v.content])).toEqual(
        pv.volumes!.map((v) => [v.name, v.fs === 'swap' ? 'swap' : expect.stringMatching(v.fs)]),
      );
      // Kept: a fraction of the PV (kept whole before this layer existed).
      expect(part.usedBytes).toBeLessThan(pv.size / 2);
      const text = (await diskube(['inspect', image])).stdout;
      for (const v of pv.volumes!) expect(text).toContain(`LV ${v.name}`);

      const used = await diskubeJson<Used>(['used', image]);
      expect(used.usedBytes).toBe(inspection.usedBytes);
      const backup = join(dir, 'snap.dkb');
      const restored = join(dir, 'restored.img');
      await diskubeJson(['backup', image, backup]);
      expect((await diskube(['verify', backup])).code).toBe(0);
      await diskubeJson(['restore', backup, restored]);

      const { droppedNonZeroBytes } = await compareMasked(image, restored, used.ranges);
      expect(droppedNonZeroBytes, 'stale bytes in the LVs were dropped').toBeGreaterThan(0);
      expect(await expectFilesystemsIntact(restored, manifest, dir)).toBeGreaterThan(0);
      expect(await vgcfgBackup(restored, pv, dir)).toBe(await vgcfgBackup(image, pv, dir));

      // The same layers and the same map inside a qcow2.
      const qcow2 = join(dir, 'vm.qcow2');
      execFileSync('qemu-img', ['convert', '-O', 'qcow2', image, qcow2]);
      expect((await diskubeJson<Used>(['used', qcow2])).ranges).toEqual(used.ranges);
      console.log(
        `${name}: PV ${pv.size} bytes, kept ${part.usedBytes} (${((100 * part.usedBytes) / pv.size).toFixed(1)}%); disk kept ${used.usedBytes} of ${inspection.usedBytes}`,
      );
    });
  }
});

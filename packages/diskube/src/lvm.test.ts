import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memorySource } from '@diskube/core';
import { buildImage, type ManifestPartition, type ManifestVolume } from '@diskube/mkimage';
import {
  assembleVolume,
  expectPartitionIntact,
  partcloneDomain,
  randomBytes,
  requireTools,
  vgcfgBackup,
} from '@diskube/mkimage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectImage } from './index.js';
import { backup, inspectImageFile, restore } from './node.js';

const tools = requireTools(
  ['losetup', 'pvcreate', 'vgcfgrestore', 'vgcfgbackup', 'lvs', 'mke2fs', 'mkswap', 'mkfs.fat'],
  'diskube LVM tests',
);

/**
 * An Ubuntu-Server-like disk: BIOS boot, ESP, and a PV holding an ext4 root with deleted data,
 * a swap LV, a /home in three segments in reverse disk order, and a striped LV, with free
 * extents left over.
 */
const UBUNTU = `
disk 192M gpt
  partition 1M raw type=bios
  partition 32M fat type=efi
    file /EFI/BOOT/BOOTX64.EFI 200K random seed=70
  partition rest lvm vg=ubuntu-vg
    lv root 64M ext4
      prefill random seed=71
      file /etc/hostname "vm"
      file /usr/big 6M random seed=72
      file /var/stale 12M random seed=73
      delete /var/stale
    lv swap 16M swap
    lv home 32M ext4 segments=3
      prefill random seed=76
      file /home/u/h 3M random seed=74
    lv data 16M ext4 stripes=2
      file /d 4M random seed=75
`;

/** Disk offset of LV byte `at`, from mkimage's own layout (not diskube's reader). */
function diskOffset(p: ManifestPartition, v: ManifestVolume, at: number): number {
  const s = v.segments.find((x) => x.start <= at && at < x.start + x.length)!;
  const within = at - s.start;
  if (s.areas.length === 1) return p.offset + s.areas[0]! + within;
  const chunk = Math.floor(within / s.stripeSize);
  return (
    p.offset +
    s.areas[chunk % s.areas.length]! +
    Math.floor(chunk / s.areas.length) * s.stripeSize +
    (within % s.stripeSize)
  );
}

describe.skipIf(!tools)('an Ubuntu-like disk with LVM', { timeout: 300_000 }, () => {
  let image: string;
  let pv: ManifestPartition;
  let dir: string;
  beforeAll(async () => {
    const built = await buildImage(UBUNTU);
    image = built.image;
    pv = built.manifest.partitions.find((p) => p.fs === 'lvm')!;
    dir = await mkdtemp(join(tmpdir(), 'diskube-lvm-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('inspects partition → PV → VG → LVs → filesystems, each LV with its used share', async () => {
    const inspection = await inspectImageFile(image);
    const part = inspection.parts.find((p) => p.number === 3)!;
    expect(part).toMatchObject({ kind: 'volume-group', content: 'lvm2', offset: pv.offset });
    const group = part.volumeGroup!;
    expect(group).toMatchObject({ format: 'lvm2', name: 'ubuntu-vg' });
    expect(group.volumes.map((v) => [v.name, v.kind, v.content])).toEqual([
      ['root', 'filesystem', 'ext4'],
      ['swap', 'swap', 'swap'],
      ['home', 'filesystem', 'ext4'],
      ['data', 'filesystem', 'ext4'],
    ]);
    for (const v of group.volumes) expect(v.usedBytes, v.name).toBeLessThan(v.size);
    // The PV keeps its metadata and what its LVs keep, not its free extents or deleted data.
    const lvBytes = group.volumes.reduce((n, v) => n + v.usedBytes, 0);
    expect(part.usedBytes).toBeGreaterThanOrEqual(lvBytes);
    expect(part.usedBytes).toBeLessThanOrEqual(lvBytes + group.metadataBytes + 64 * 1024);
    // Only the BIOS boot partition, which holds no filesystem, is unknown.
    expect(inspection.warnings.map((w) => w.code)).toEqual(['unknown-partition']);

    // Without the LVM layer the PV is an unknown partition, kept whole.
    const whole = await inspectImageFile(image, { volumeManagers: [] });
    const wholePart = whole.parts.find((p) => p.number === 3)!;
    expect(wholePart).toMatchObject({ kind: 'unknown', usedBytes: pv.size });
    expect(part.usedBytes).toBeLessThan(pv.size / 3);
  });

  it('keeps every block partclone copies in each LV and little more, found through mkimage’s own layout', async () => {
    const inspection = await inspectImageFile(image);
    const { used, blockSize } = inspection;
    const volumes = inspection.parts.find((p) => p.number === 3)!.volumeGroup!.volumes;
    for (const v of pv.volumes!.filter((x) => x.fs === 'ext4')) {
      const lv = join(dir, `${v.name}.img`);
      await assembleVolume(image, pv.offset, v, lv);
      const domain = await partcloneDomain('extfs', lv);
      await rm(lv, { force: true });
      expect(domain.length, v.name).toBeGreaterThan(0);
      let missing = 0;
      for (const [offset, length] of domain) {
        for (let at = offset; at < offset + length; at += 4096) {
          if (!used.get(Math.floor(diskOffset(pv, v, at) / blockSize))) missing++;
        }
      }
      expect(missing, `${v.name}: blocks partclone copies that diskube drops`).toBe(0);
      const theirs = domain.reduce((n, [, length]) => n + length, 0);
      const ours = volumes.find((x) => x.name === v.name)!.usedBytes;
      expect(ours, `${v.name}: kept vs partclone`).toBeLessThanOrEqual(theirs * 1.02 + 65536);
    }
  });

  it('maps a whole-disk PV (no partition table) the same way', async () => {
    const disk = await readFile(image);
    const bytes = new Uint8Array(disk.subarray(pv.offset, pv.offset + pv.size));
    const bare = await inspectImage(memorySource(bytes));
    expect(bare.table).toBeNull();
    const part = bare.parts[0]!;
    expect(part).toMatchObject({ kind: 'volume-group', content: 'lvm2', number: null });
    const partitioned = (await inspectImageFile(image)).parts.find((p) => p.number === 3)!;
    expect(part.usedBytes).toBe(partitioned.usedBytes);
  });

  it('backs up and restores: every partition and LV fscks clean with identical files, vgcfgbackup unchanged', async () => {
    const out = join(dir, 'vm.dkb');
    const result = await backup({ image, out });
    const restoredImage = join(dir, 'restored.img');
    await restore({ backup: out, out: restoredImage });
    const built = await buildImage(UBUNTU);
    let files = 0;
    for (const p of built.manifest.partitions)
      files += await expectPartitionIntact(restoredImage, p, dir);
    expect(files).toBeGreaterThanOrEqual(5);
    expect(await vgcfgBackup(restoredImage, pv, dir)).toBe(await vgcfgBackup(image, pv, dir));
    expect(result.usedBytes).toBe((await inspectImageFile(image)).usedBytes);
    // The deleted file is not restored (it was on disk: the original holds it).
    expect(
      (await readFile(image)).indexOf(randomBytes(73, 4096).subarray(1024, 1056)),
    ).toBeGreaterThan(0);
    const back = await readFile(restoredImage);
    expect(back.indexOf(randomBytes(73, 4096).subarray(1024, 1056))).toBe(-1);
  });
});

import { describe, expect, it } from 'vitest';
import { parseSpec } from './parse.js';
import { scratchBuild } from './scratch.test-support.js';
import { lvmSegments, requireTools, UBUNTU_LVM_SPEC, vgcfgBackup } from './testing.js';

const tools = requireTools(
  ['losetup', 'pvcreate', 'vgcfgrestore', 'lvs', 'mke2fs', 'mkswap'],
  'lvm builder tests',
);
const scratch = scratchBuild();

const SPEC = UBUNTU_LVM_SPEC;

describe('lv lines', () => {
  it('parse under an lvm partition, with segments= and stripes=', () => {
    const spec = parseSpec(SPEC);
    const p = spec.partitions[1]!;
    expect(
      p.kind === 'partition' &&
        p.filesystem.volumes?.map((v) => [v.name, v.size, v.segments, v.stripes]),
    ).toEqual([
      ['root', 40 * 2 ** 20, 1, 1],
      ['swap', 8 * 2 ** 20, 1, 1],
      ['home', 24 * 2 ** 20, 3, 1],
      ['data', 16 * 2 ** 20, 1, 2],
    ]);
  });

  it.each([
    ['disk 64M gpt\n  partition rest lvm\n    file /x "a"\n', "holds only 'lv"],
    ['disk 64M gpt\n  partition rest lvm\n    lv a 8M ext4\n    lv a 8M ext4\n', 'unique'],
    ['disk 64M gpt\n  partition rest lvm\n    lv a 8M lvm\n', 'cannot be nested'],
    [
      'disk 64M gpt\n  partition rest lvm\n    lv a 8M ext4 segments=2 stripes=2\n',
      'do not combine',
    ],
    ['disk 64M gpt\n  partition rest lvm\n    lv a 8M ext4 stripes=99\n', 'stripes must be'],
  ])('refuses %j', (text, message) => {
    expect(() => parseSpec(text)).toThrow(message);
  });
});

describe.skipIf(!tools)('lvm builder', { timeout: 300_000 }, () => {
  it('lays out linear, multi-segment and striped LVs that LVM reads back the same; every LV fscks clean', async () => {
    const { image, manifest } = await scratch.buildAndVerify(SPEC);
    const p = manifest.partitions[1]!;
    expect(p.fs).toBe('lvm');
    expect(p.type?.toUpperCase()).toBe('E6D6D379-F507-44C2-A23C-238F2A3DF928');
    // The oracle: LVM's own report of the PV, against what the manifest recorded.
    const oracle = await lvmSegments(image, p);
    const recorded = p.volumes!.flatMap((v) =>
      v.segments.map((s) => ({
        lv: v.name,
        start: s.start,
        length: s.length,
        stripeSize: s.stripeSize,
        areas: s.areas,
      })),
    );
    const sort = (a: { lv: string; start: number }, b: { lv: string; start: number }) =>
      a.lv.localeCompare(b.lv) || a.start - b.start;
    expect(oracle.map(({ type: _, ...s }) => s).sort(sort)).toEqual(recorded.sort(sort));
    expect(oracle.filter((s) => s.lv === 'home')).toHaveLength(3);
    expect(oracle.find((s) => s.lv === 'data')).toMatchObject({
      type: 'striped',
      stripeSize: 65536,
    });
    expect(p.volumes!.map((v) => v.files.length)).toEqual([2, 0, 1, 1]);
    const backup = await vgcfgBackup(image, p, scratch.work);
    expect(backup).toContain('ubuntu-vg {');
    expect(backup).not.toContain('creation_time =');
  });
});

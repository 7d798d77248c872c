import { spawnSync } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools('qemu-img', 'mke2fs', 'mkntfs', 'ntfsfix', 'sfdisk', 'sgdisk', 'gcc');

// A GPT disk with ext4 and NTFS, stale data in free space, and a size that leaves a gap after
// the last partition (the backup GPT lives there).
const SPEC = `disk 120M gpt
  partition 48M ext4 label=root
    prefill random seed=41
    file /etc/hostname "vm-restore"
    file /var/lib/data.bin 7M random seed=42
    files /many 100 small
    file /stale 5M random seed=43
    delete /stale
  partition 56M ntfs cluster=4K label=data
    prefill random seed=44
    file /Users/a/report.txt 2M text
    file /Users/a/big.bin 6M random seed=45
    file /stale 4M random seed=46
    delete /stale`;

function qemuImg(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.runIf(have)('diskube restore into VM containers', () => {
  it('qcow2 and VDI outputs check clean and hold exactly the restored raw disk', async () => {
    const { image, manifest } = await buildImage(SPEC);
    const dir = await scratch();
    const backup = join(dir, 'b.dkb');
    await diskubeJson(['backup', image, backup]);
    const raw = join(dir, 'restored.raw');
    await diskubeJson(['restore', backup, raw]);
    await expectFilesystemsIntact(raw, manifest, dir);

    const sizes: Record<string, number> = {};
    for (const [name, format, extra] of [
      ['out.qcow2', 'qcow2', []],
      ['out.vdi', 'vdi', []],
      ['out-explicit.img', 'qcow2', ['--format', 'qcow2']],
      ['out-compressed.qcow2', 'qcow2', ['--compressed']],
    ] as const) {
      const out = join(dir, name);
      const args = ['restore', backup, out, ...extra];
      const result = await diskubeJson<{ format: string; bytesWritten: number }>(args);
      expect(result.format, name).toBe(format);
      const check = qemuImg(['check', '-f', format, out]);
      expect(check.status, check.out).toBe(0);
      expect(check.out).toContain('No errors were found on the image.');
      expect(check.out).not.toMatch(/leak|corrupt/i);
      const cmp = qemuImg(['compare', '-f', format, '-F', 'raw', out, raw]);
      expect(cmp.out, name).toContain('Images are identical');
      expect(cmp.status).toBe(0);
      // Used blocks only: the container is far smaller than the disk.
      sizes[name] = (await stat(out)).size;
      expect(sizes[name]).toBeLessThan(manifest.size / 2);
      // Our own reader backs the container up again to the same used data.
      const again = join(dir, `${name}.dkb`);
      await diskubeJson(['backup', out, again]);
      const back = join(dir, `${name}.raw`);
      await diskubeJson(['restore', again, back]);
      expect(qemuImg(['compare', '-f', 'raw', '-F', 'raw', back, raw]).status, name).toBe(0);
    }
    // The text file and metadata compress; the random files do not.
    expect(sizes['out-compressed.qcow2']!).toBeLessThan(sizes['out.qcow2']! - 1024 * 1024);
    // Leftover temporary files would mean a restore did not rename its output.
    expect((await readdir(dir)).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('refuses an existing output without --force and a bad --format', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await scratch();
    const backup = join(dir, 'b.dkb');
    await diskubeJson(['backup', image, backup]);
    await diskubeJson(['restore', backup, join(dir, 'x.vdi')]);
    const again = await diskube(['restore', backup, join(dir, 'x.vdi')]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
    const forced = await diskube(['restore', backup, join(dir, 'x.vdi'), '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    const bad = await diskube(['restore', backup, join(dir, 'y.img'), '--format', 'vmdk']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--format must be raw, qcow2 or vdi');
    const vdiCompressed = await diskube(['restore', backup, join(dir, 'z.vdi'), '--compressed']);
    expect(vdiCompressed.code).not.toBe(0);
    expect(vdiCompressed.stderr).toContain('--compressed needs qcow2 output');
    expect((await readdir(dir)).sort()).toEqual(['b.dkb', 'x.vdi']);
  });
});

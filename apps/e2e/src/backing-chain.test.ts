import { execFileSync } from 'node:child_process';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

// Issue 14: a qcow2 overlay chain of depth 2 over a DSL-built disk, backed up and restored by
// the built CLI. Each layer is a later state of the disk (files added), made an
// overlay of the one before by `qemu-img rebase` (which copies in only the clusters that differ),
// so the chain's blocks really come from all three files. The restore must equal the restore of
// `qemu-img convert -O raw` of the chain, match that conversion inside the used ranges, and pass
// fsck with every file of the last state identical.

const have = requireTools('qemu-img', 'mke2fs', 'sfdisk');

const state = (extra: string) => `disk 64M mbr
  partition 48M ext4
    file /etc/os-release "NAME=demo"
    file /var/lib/one 3M random seed=41
    file /stale 2M random seed=42
${extra}`;

type Used = { ranges: Array<[number, number]>; usedBytes: number };

describe.runIf(have)('qcow2 backing chain through the CLI', () => {
  it('depth 2 (top → mid → ../base/base.qcow2) restores like qemu-img convert of the chain', async () => {
    const dir = await scratch();
    await mkdir(join(dir, 'base'));
    await mkdir(join(dir, 'vm'));
    const base = await buildImage(state(''));
    const mid = await buildImage(state('    file /home/u/two 4M random seed=43'));
    const top = await buildImage(
      state('    file /home/u/two 4M random seed=43\n    file /home/u/three 1M random seed=44'),
    );
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { cwd: dir });
    qemuImg('convert', '-f', 'raw', '-O', 'qcow2', base.image, 'base/base.qcow2');
    // An overlay holding only the clusters where `image` differs from `backing`: an empty
    // overlay of the full image, then a safe `qemu-img rebase` onto `backing` (it copies in the
    // clusters that differ). Names are stored as given, relative to the overlay's directory.
    const overlay = (image: string, backing: string, out: string) => {
      const inVm = (...args: string[]) => execFileSync('qemu-img', args, { cwd: join(dir, 'vm') });
      inVm('convert', '-f', 'raw', '-O', 'qcow2', image, `${out}.full`);
      inVm('create', '-f', 'qcow2', '-b', `${out}.full`, '-F', 'qcow2', out);
      inVm('rebase', '-f', 'qcow2', '-b', backing, '-F', 'qcow2', out);
      rmSync(join(dir, 'vm', `${out}.full`));
    };
    overlay(mid.image, '../base/base.qcow2', 'mid.qcow2');
    overlay(top.image, 'mid.qcow2', 'top.qcow2');
    const chainTop = join(dir, 'vm/top.qcow2');
    // The overlays hold only what changed: the chain really reads from all three files.
    const sizeOf = (f: string) => statSync(join(dir, f)).size;
    expect(sizeOf('vm/top.qcow2')).toBeLessThan(sizeOf('base/base.qcow2') / 2);
    expect(sizeOf('vm/mid.qcow2')).toBeLessThan(sizeOf('base/base.qcow2'));
    qemuImg('convert', '-O', 'raw', 'vm/top.qcow2', 'flat.raw');
    const flat = join(dir, 'flat.raw');

    // The base lies outside the overlay's directory: refused (exit 4) unless allowed.
    const refused = await diskube(['inspect', chainTop]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('../base/base.qcow2');
    const allow = ['--allow-backing-dir', join(dir, 'base')];
    const text = await diskube(['inspect', chainTop, ...allow]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /chain +top\.qcow2 \(.+\) → mid\.qcow2 \(.+\) → \.\.\/base\/base\.qcow2 \(.+\)/,
    );
    const json = await diskubeJson<{
      container: { chain: Array<{ format: string; name: string | null }> };
    }>(['inspect', chainTop, ...allow]);
    expect(json.container.chain.map((l) => l.name)).toEqual([
      null,
      'mid.qcow2',
      '../base/base.qcow2',
    ]);

    const used = await diskubeJson<Used>(['used', chainTop, ...allow]);
    const flatUsed = await diskubeJson<Used>(['used', flat]);
    expect(used.ranges).toEqual(flatUsed.ranges);

    await diskubeJson(['backup', chainTop, join(dir, 'chain.dkb'), ...allow]);
    await diskubeJson(['restore', join(dir, 'chain.dkb'), join(dir, 'chain.img')]);
    await diskubeJson(['backup', flat, join(dir, 'flat.dkb')]);
    await diskubeJson(['restore', join(dir, 'flat.dkb'), join(dir, 'flat.img')]);
    expect(
      Buffer.compare(await readFile(join(dir, 'chain.img')), await readFile(join(dir, 'flat.img'))),
    ).toBe(0);
    await compareMasked(flat, join(dir, 'chain.img'), used.ranges);
    expect(
      await expectFilesystemsIntact(join(dir, 'chain.img'), top.manifest, dir),
    ).toBeGreaterThan(2);
  });
});

describe.runIf(have)('parents the CLI looks for', () => {
  it('a differencing VDI finds its parent by UUID beside it; a missing parent exits 6, a loop 3', async () => {
    const dir = await scratch();
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { cwd: dir });
    qemuImg('create', '-f', 'vdi', 'parent.vdi', '8M');
    execFileSync('qemu-io', ['-f', 'vdi', '-c', 'write -P 0x5a 1M 2M', join(dir, 'parent.vdi')]);
    qemuImg('create', '-f', 'vdi', 'other.vdi', '8M');
    // A differencing child with no blocks of its own (VDICore.h VDIHEADER1): the parent's
    // header with image type 4, its own uuidCreate, uuidLinkage = the parent's uuidCreate
    // (0x188 → 0x1A8), uuidParentModify = its uuidModify (0x198 → 0x1B8), every block free.
    const parent = await readFile(join(dir, 'parent.vdi'));
    const offData = parent.readUInt32LE(0x158);
    const child = Buffer.alloc(offData);
    parent.copy(child, 0, 0, 512);
    child.writeUInt32LE(4, 0x4c);
    parent.copy(child, 0x1a8, 0x188, 0x198);
    parent.copy(child, 0x1b8, 0x198, 0x1a8);
    child.fill(0x42, 0x188, 0x198);
    child.writeUInt32LE(0, 0x184);
    child.fill(0xff, parent.readUInt32LE(0x154), offData);
    writeFileSync(join(dir, 'child.vdi'), child);
    const used = await diskubeJson<Used>(['used', join(dir, 'child.vdi')]);
    expect(used.ranges).toEqual([[0, 8 << 20]]); // nothing recognised: all kept
    const inspect = await diskubeJson<{ container: { chain: Array<{ format: string }> } }>([
      'inspect',
      join(dir, 'child.vdi'),
    ]);
    expect(inspect.container.chain.map((l) => l.format)).toEqual(['vdi', 'vdi']);
    await diskubeJson(['backup', join(dir, 'child.vdi'), join(dir, 'child.dkb')]);
    await diskubeJson(['restore', join(dir, 'child.dkb'), join(dir, 'child.img')]);
    qemuImg('convert', '-O', 'raw', 'parent.vdi', 'parent.raw');
    expect(
      Buffer.compare(
        await readFile(join(dir, 'child.img')),
        await readFile(join(dir, 'parent.raw')),
      ),
    ).toBe(0);

    rmSync(join(dir, 'parent.vdi'));
    const missing = await diskube(['inspect', join(dir, 'child.vdi')]);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/parent image with UUID "[0-9a-f-]{36}" not found/);

    qemuImg('create', '-f', 'qcow2', 'a.qcow2', '4M');
    qemuImg('create', '-f', 'qcow2', '-b', 'a.qcow2', '-F', 'qcow2', 'b.qcow2');
    qemuImg('rebase', '-u', '-b', 'b.qcow2', '-F', 'qcow2', 'a.qcow2');
    const loop = await diskube(['inspect', join(dir, 'b.qcow2')]);
    expect(loop.code).toBe(3);
    expect(loop.stderr).toContain('loops');
  });
});

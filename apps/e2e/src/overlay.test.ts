import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync, statSync, utimesSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

// Issue 14, backing up overlays: a VM's qcow2 overlay on a template. The template is backed up
// once; the VM is then backed up against that backup reading only what the overlay holds
// (--overlay-only), into a backup file and into a repository, and restored either whole or as
// a qcow2 overlay on the template (--backing) that qemu-img checks and compares with the
// original chain. The VM's disk is the template's with files changed, added and deleted (the
// DSL builds both from the same spec, so the template's blocks stay where they were).

const have = requireTools('qemu-img', 'mke2fs', 'debugfs', 'sfdisk');

const TEMPLATE = `disk 64M mbr
  partition 56M ext4
    file /etc/os-release "NAME=demo"
    file /var/lib/db.bin 12M random seed=61
    file /var/log/old.log 3M random seed=62
    file /usr/share/doc 6M text`;
const VM = `${TEMPLATE}
    overwrite /var/lib/db.bin 2M 512K random seed=63
    append /usr/share/doc 200K text
    file /home/u/new.bin 1536K random seed=64
    delete /var/log/old.log`;

type Backup = { bytesRead: number; changedBlocks: number; storedBytes: number };
type Layer = { name: string | null; dataBytes: number; zeroBytes: number; fileSize: number };

/** Bytes `qemu-img map` puts at depth 0 of `image` (what that file holds itself). */
function qemuHeld(dir: string, image: string): number {
  const map = JSON.parse(
    execFileSync('qemu-img', ['map', '--output=json', image], { cwd: dir, encoding: 'utf8' }),
  ) as Array<{ length: number; depth: number; data: boolean }>;
  return map.filter((e) => e.depth === 0 && e.data).reduce((n, e) => n + e.length, 0);
}

/** tmpl.qcow2 (the template) and vm.qcow2, an overlay on it, in a scratch directory. */
async function templateAndOverlay() {
  const dir = await scratch();
  const template = await buildImage(TEMPLATE);
  const vm = await buildImage(VM);
  const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { cwd: dir });
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', template.image, 'tmpl.qcow2');
  // The VM's overlay holds the clusters where its disk differs from the template.
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', vm.image, 'vm.full.qcow2');
  qemuImg('create', '-f', 'qcow2', '-b', 'vm.full.qcow2', '-F', 'qcow2', 'vm.qcow2');
  qemuImg('rebase', '-f', 'qcow2', '-b', 'tmpl.qcow2', '-F', 'qcow2', 'vm.qcow2');
  rmSync(join(dir, 'vm.full.qcow2'));
  return { dir, vm, qemuImg, path: (name: string) => join(dir, name) };
}

describe.runIf(have)('backing up a qcow2 overlay on its template', () => {
  it('--overlay-only reads only the overlay; restores whole or as an overlay qemu-img compares equal', async () => {
    const { dir, vm, qemuImg, path } = await templateAndOverlay();
    await mkdir(join(dir, 'sub'));
    const held = qemuHeld(dir, 'vm.qcow2');
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(statSync(path('tmpl.qcow2')).size / 4);

    // inspect: each layer with what it holds itself.
    const inspect = await diskubeJson<{ layers: Layer[] }>(['inspect', path('vm.qcow2')]);
    expect(inspect.layers.map((l) => [l.name, l.dataBytes])).toEqual([
      [null, held],
      ['tmpl.qcow2', qemuHeld(dir, 'tmpl.qcow2')],
    ]);
    const text = await diskube(['inspect', path('vm.qcow2')]);
    expect(text.stdout).toMatch(/chain +vm\.qcow2 \(.+ allocated, file .+\) → tmpl\.qcow2 \(/);

    // The template once; the VM against it, by digest and reading only the overlay.
    await diskubeJson(['backup', path('tmpl.qcow2'), path('tmpl.dkb')]);
    const digest = await diskubeJson<Backup>([
      'backup',
      path('vm.qcow2'),
      path('digest.dkb'),
      '--base',
      path('tmpl.dkb'),
    ]);
    const only = await diskube([
      'backup',
      path('vm.qcow2'),
      path('only.dkb'),
      '--base',
      path('tmpl.dkb'),
      '--overlay-only',
      '--json',
    ]);
    expect(only.code, only.stderr).toBe(0);
    expect(only.stderr).not.toContain('overlay-untrusted');
    const overlayOnly = JSON.parse(only.stdout) as Backup;
    expect(overlayOnly.changedBlocks).toBe(digest.changedBlocks);
    expect(overlayOnly.bytesRead).toBeLessThanOrEqual(held);
    expect(overlayOnly.bytesRead).toBeLessThan(digest.bytesRead / 4);
    console.log(
      `overlay-only: read ${overlayOnly.bytesRead} bytes (overlay holds ${held}); by digest: ${digest.bytesRead}`,
    );

    await diskubeJson(['restore', path('digest.dkb'), path('digest.img')]);
    await diskubeJson(['restore', path('only.dkb'), path('only.img')]);
    expect(
      Buffer.compare(await readFile(path('digest.img')), await readFile(path('only.img'))),
    ).toBe(0);
    expect(await expectFilesystemsIntact(path('only.img'), vm.manifest, dir)).toBeGreaterThan(3);

    // Restored as an overlay on the template: qemu-img check clean, equal to the original chain,
    // holding about what the original overlay holds.
    const restored = await diskubeJson<{ bytesWritten: number }>([
      'restore',
      path('only.dkb'),
      path('back.qcow2'),
      '--backing',
      path('tmpl.qcow2'),
    ]);
    expect(restored.bytesWritten).toBeGreaterThan(0);
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', 'back.qcow2'], {
        cwd: dir,
        encoding: 'utf8',
      }),
    ) as { 'backing-filename': string; 'backing-filename-format': string };
    expect(info['backing-filename']).toBe(path('tmpl.qcow2')); // stored as given (absolute)
    expect(info['backing-filename-format']).toBe('qcow2');
    const check = spawnSync('qemu-img', ['check', 'back.qcow2'], { cwd: dir, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const compare = spawnSync('qemu-img', ['compare', 'back.qcow2', 'vm.qcow2'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(compare.status, compare.stdout + compare.stderr).toBe(0);
    expect(qemuHeld(dir, 'back.qcow2')).toBeLessThanOrEqual(held);
    console.log(
      `restored overlay holds ${qemuHeld(dir, 'back.qcow2')} bytes, the original ${held}; wrote ${restored.bytesWritten}`,
    );
    // A relative backing path is stored relative to the overlay's directory.
    const sub = await diskube(
      ['restore', 'only.dkb', 'sub/back.qcow2', '--backing', 'tmpl.qcow2', '--json'],
      { cwd: dir },
    );
    expect(sub.code, sub.stderr).toBe(0);
    const subInfo = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', 'sub/back.qcow2'], {
        cwd: dir,
        encoding: 'utf8',
      }),
    ) as { 'backing-filename': string };
    expect(subInfo['backing-filename']).toBe('../tmpl.qcow2');
    expect(
      spawnSync('qemu-img', ['compare', 'sub/back.qcow2', 'vm.qcow2'], { cwd: dir }).status,
    ).toBe(0);
    qemuImg('convert', '-O', 'raw', 'back.qcow2', 'back.raw');
    expect(await expectFilesystemsIntact(path('back.raw'), vm.manifest, dir)).toBeGreaterThan(3);

    // A template changed since its backup is not trusted: a warning, and digests as without.
    const now = new Date();
    utimesSync(path('tmpl.qcow2'), now, now);
    const stale = await diskube([
      'backup',
      path('vm.qcow2'),
      path('stale.dkb'),
      '--base',
      path('tmpl.dkb'),
      '--overlay-only',
      '--json',
    ]);
    expect(stale.code, stale.stderr).toBe(0);
    expect(stale.stderr).toMatch(/"tmpl\.qcow2" was modified after tmpl\.dkb was made/);
    expect((JSON.parse(stale.stdout) as Backup).bytesRead).toBe(digest.bytesRead);
    // An image without a backing file has no overlay to read.
    const flat = await diskube([
      'backup',
      path('tmpl.qcow2'),
      path('x.dkb'),
      '--base',
      path('tmpl.dkb'),
      '--overlay-only',
    ]);
    expect(flat.code).toBe(2);
    expect(flat.stderr).toContain('no backing file');
  });

  it('a repository finds the template snapshot by its files and reads only the overlay', async () => {
    const { dir, vm, path } = await templateAndOverlay();
    const repo = path('repo');
    await diskubeJson(['repo', 'init', repo, '--chunk-size', '65536', '--json']);
    const tmpl = await diskubeJson<{ id: string }>([
      'backup',
      path('tmpl.qcow2'),
      '--repo',
      repo,
      '--name',
      'template',
      '--json',
    ]);
    type RepoBackup = { parent: string | null; bytesRead: number; chunksFromParent: number };
    const digest = await diskubeJson<RepoBackup>([
      'backup',
      path('vm.qcow2'),
      '--repo',
      repo,
      '--name',
      'vm-digest',
      '--parent',
      'template@latest',
      '--json',
    ]);
    const only = await diskubeJson<RepoBackup>([
      'backup',
      path('vm.qcow2'),
      '--repo',
      repo,
      '--name',
      'vm1',
      '--overlay-only',
      '--json',
    ]);
    expect(digest.parent).toBe(tmpl.id);
    expect(only.parent).toBe(tmpl.id);
    expect(only.bytesRead).toBeLessThanOrEqual(qemuHeld(dir, 'vm.qcow2'));
    expect(only.bytesRead).toBeLessThan(digest.bytesRead / 4);
    expect(only.chunksFromParent).toBeGreaterThan(0);
    console.log(
      `repository overlay-only: read ${only.bytesRead} bytes; by digest against the template: ${digest.bytesRead}`,
    );
    await diskubeJson(['restore', '--repo', repo, 'vm1@latest', path('vm1.img')]);
    await diskubeJson(['restore', '--repo', repo, 'vm-digest@latest', path('vm-digest.img')]);
    expect(
      Buffer.compare(await readFile(path('vm1.img')), await readFile(path('vm-digest.img'))),
    ).toBe(0);
    expect(await expectFilesystemsIntact(path('vm1.img'), vm.manifest, dir)).toBeGreaterThan(3);
  });
});

import { spawn } from 'node:child_process';
import { copyFile, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { DISKUBE, diskube, diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools('mke2fs', 'debugfs');

const SPEC = `disk 32M
  filesystem ext4 block=4K
    file /a 2M random seed=1
    file /b 1M text`;

describe('the diskube binary', () => {
  it('prints help and its version', async () => {
    const help = await diskube(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['inspect', 'used', 'backup', 'restore', 'verify', 'info']) {
      expect(help.stdout).toContain(command);
    }
    const version = await diskube(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 on a usage error and 6 on a missing file, with one line and no stack', async () => {
    expect((await diskube(['inspect'])).code).toBe(2);
    const missing = await diskube(['inspect', '/nonexistent/disk.img']);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/^diskube: cannot open/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });
});

describe.runIf(have)('refusals and damage', () => {
  it('refuses a filesystem with a pending journal (exit 5) unless --full-copy-on-doubt', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await scratch();
    const dirty = join(dir, 'dirty.img');
    await copyFile(image, dirty);
    const set = spawn('debugfs', ['-w', '-R', 'feature needs_recovery', dirty]);
    await new Promise((resolve) => set.on('close', resolve));
    const refused = await diskube(['inspect', dirty]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('--full-copy-on-doubt');
    const forced = await diskubeJson<{ usedBlocks: number; blockCount: number }>([
      'used',
      dirty,
      '--full-copy-on-doubt',
    ]);
    expect(forced.usedBlocks).toBe(forced.blockCount);
  });

  it('exits 3 on a corrupt group descriptor and copies an unrecognisable image whole', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await scratch();
    const bad = join(dir, 'bad.img');
    const bytes = await readFile(image);
    bytes[4096]! ^= 0x01; // group 0's block bitmap location: fails the descriptor checksum
    await writeFile(bad, bytes);
    const result = await diskube(['used', bad]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('descriptor');
    // A superblock that no longer looks like ext is not ext: the image is kept whole, with a warning.
    const unknown = join(dir, 'unknown.img');
    const garbled = await readFile(image);
    garbled[1024 + 0x38] = 0; // s_magic
    await writeFile(unknown, garbled);
    const kept = await diskube(['used', unknown, '--json']);
    expect(kept.code).toBe(0);
    const json = JSON.parse(kept.stdout) as { usedBytes: number; size: number };
    expect(json.usedBytes).toBe(json.size);
    expect(kept.stderr).toContain('whole');
  });

  it('verify names damage, restore refuses it, and nothing is written', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await scratch();
    const backup = join(dir, 'b.dkb');
    await diskubeJson(['backup', image, backup]);
    const size = (await stat(backup)).size;
    const original = await readFile(backup);
    for (const at of [3, 100, Math.floor(size / 3), Math.floor(size / 2), size - 40, size - 1]) {
      const damaged = Buffer.from(original);
      damaged[at]! ^= 0x10;
      await writeFile(backup, damaged);
      const verify = await diskube(['verify', backup]);
      expect(verify.code, `bit flip at ${at}`).toBe(3);
      expect(verify.stdout).toContain('DAMAGED');
      const out = join(dir, `out-${at}.img`);
      const restore = await diskube(['restore', backup, out]);
      expect(restore.code, `restore after bit flip at ${at}`).not.toBe(0);
      expect((await readdir(dir)).filter((f) => f.startsWith(`out-${at}`))).toEqual([]);
    }
    for (const cut of [0, 10, Math.floor(size / 2), size - 1]) {
      await writeFile(backup, original.subarray(0, cut));
      expect((await diskube(['verify', backup])).code, `truncated at ${cut}`).toBe(3);
    }
  });

  it('refuses to overwrite without --force and finds a missing parent', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await scratch();
    const snap = join(dir, 's.dkb');
    await diskubeJson(['backup', image, snap]);
    expect((await diskube(['backup', image, snap])).code).not.toBe(0);
    expect((await diskube(['backup', image, snap, '--force'])).code).toBe(0);
    const inc = join(dir, 'i.dkb');
    await diskubeJson(['backup', image, inc, '--base', snap]);
    await rename(snap, join(dir, 'elsewhere.bin'));
    await writeFile(join(dir, 'elsewhere.bin'), 'not a backup any more');
    const restore = await diskube(['restore', inc, join(dir, 'r.img')]);
    expect(restore.code).toBe(2);
    expect(restore.stderr).toContain('parent');
    expect((await diskube(['verify', inc])).code).not.toBe(0);
  });

  it('a backup killed mid-way leaves no valid-looking file, and the earlier chain still restores', async () => {
    const { image } = await buildImage(`disk 384M
  filesystem ext4
    file /big 300M random seed=8`);
    const dir = await scratch();
    const snap = join(dir, 's.dkb');
    await diskubeJson(['backup', image, snap, '--compress', 'none']);
    const killed = join(dir, 'killed.dkb');
    const child = spawn(process.execPath, [
      DISKUBE,
      'backup',
      image,
      killed,
      '--base',
      snap,
      '--level',
      '19',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 700));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    const names = await readdir(dir);
    expect(names).not.toContain('killed.dkb');
    // Whatever temporary file remains is not taken for a backup.
    for (const name of names.filter((n) => n !== 's.dkb')) {
      expect((await diskube(['verify', join(dir, name)])).code).not.toBe(0);
    }
    expect((await diskube(['restore', snap, join(dir, 'r.img')])).code).toBe(0);
  });
});

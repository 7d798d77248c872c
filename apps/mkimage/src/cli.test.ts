import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FS_TYPES } from './fs/registry.js';
import { missingTools, scratchDir } from './testing.js';

// End-to-end over the built binary, as users run it (the test task depends on build).
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const missing = await missingTools(['mke2fs', 'debugfs', 'dumpe2fs']);
const skip = missing.length > 0 && process.env.CI !== 'true';

let dir: string;
beforeAll(async () => {
  dir = await scratchDir();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mkimage = (args: string[], input = '') =>
  spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8' });

describe('mkimage CLI', { timeout: 120_000 }, () => {
  it('is built', () => {
    expect(existsSync(cli), `${cli} missing: run pnpm --filter @diskube/mkimage build`).toBe(true);
  });

  it.skipIf(skip)('builds from stdin and writes the manifest beside the image', async () => {
    const out = join(dir, 'disk.img');
    const r = mkimage(['-', '-o', out], 'disk 8M\n  filesystem ext2\n    file /x "hi"\n');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('#0 ext2 at 0 size 8M: 1 files, 2 bytes');
    const manifest = JSON.parse(await readFile(`${out}.manifest.json`, 'utf8'));
    expect(manifest.partitions[0].files).toEqual([
      {
        path: '/x',
        size: 2,
        sha256: '8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4',
      },
    ]);
  });

  it.skipIf(skip)('reads a spec file and prints the manifest with --json', async () => {
    const spec = join(dir, 'two.dsk');
    await writeFile(spec, 'disk 8M mbr  # comment\n  partition rest ext4\n    dir /d\n');
    const out = join(dir, 'two.img');
    const r = mkimage([spec, '-o', out, '--json']);
    expect(r.status).toBe(0);
    const manifest = JSON.parse(r.stdout);
    expect(manifest).toMatchObject({ size: 8 * 2 ** 20, table: 'mbr' });
    expect(manifest.partitions[0]).toMatchObject({
      index: 1,
      offset: 2 ** 20,
      fs: 'ext4',
      dirs: ['/d'],
    });
    expect(JSON.parse(await readFile(`${out}.manifest.json`, 'utf8'))).toEqual(manifest);
  });

  it('reports a spec file error with its name', async () => {
    const spec = join(dir, 'bad.dsk');
    await writeFile(spec, 'disk 8M\n  filesystem ext4\n    delete /nope\n');
    const r = mkimage(['-o', join(dir, 'x.img'), spec]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`${spec}:3:5: cannot delete /nope: no such file or directory\n`);
  });

  it('prints a spec error as file:line:column without a stack and exits 2', () => {
    const r = mkimage(['-', '-o', join(dir, 'bad.img')], 'disk 8M\n  filesystem ext9\n');
    expect(r.status).toBe(2);
    // The list is the registry's (fs/registry.ts), so a new filesystem needs no edit here.
    expect(r.stderr).toBe(
      `<stdin>:2:14: unknown filesystem type 'ext9' (expected one of: ${FS_TYPES.join(', ')})\n`,
    );
    expect(FS_TYPES.slice(0, 5)).toEqual(['ext2', 'ext3', 'ext4', 'ntfs', 'fat']);
    expect(existsSync(join(dir, 'bad.img'))).toBe(false);
  });

  it('rejects bad arguments with usage and exit 2', () => {
    const r = mkimage(['spec.dsk']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage: mkimage');
  });
});

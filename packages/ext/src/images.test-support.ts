// Test support (not exported by the package): real ext images built with e2fsprogs, and the
// e2fsprogs view of their used blocks to compare against (partclone's comes from `partcloneDomain`
// in @diskube/mkimage/testing; tool checks from its `requireTools`).
//
// Images are built with `mke2fs` and populated with `debugfs -w` (write, mkdir, rm), so no
// mount or loop device is needed. They are sparse files cached under the OS temp directory,
// keyed by a hash of the recipe. Most tests build images with the @diskube/mkimage DSL;
// `buildExt` remains for what the DSL cannot express (mke2fs -r 0, -g).

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { randomBytes } from '@diskube/core/test';

const CACHE = join(tmpdir(), 'diskube-ext-test-images');

export interface ExtRecipe {
  /** Image file size in bytes. */
  size: number;
  /** Arguments for mke2fs before the device (e.g. ['-t', 'ext4', '-b', '1024']). */
  mkfs: string[];
  /** mke2fs block count, when the filesystem should be smaller than the file. */
  blocks?: number;
  /** Random files to write (sizes in bytes); every third one is deleted afterwards. */
  files?: number[];
  seed?: number;
}

/** Build (or reuse) the image for `recipe`; returns its path. Treat it as read-only. */
export function buildExt(recipe: ExtRecipe): string {
  const key = createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 16);
  const path = join(CACHE, `${key}.img`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, `${key}.${process.pid}.tmp`);
  mkdirSync(work, { recursive: true });
  try {
    const img = join(work, 'image');
    execFileSync('truncate', ['-s', String(recipe.size), img]);
    const env = { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000', MKE2FS_CONFIG: '' };
    execFileSync(
      'mke2fs',
      [
        '-q',
        '-F',
        '-U',
        '01234567-89ab-cdef-0123-456789abcdef',
        ...recipe.mkfs,
        img,
        ...(recipe.blocks !== undefined ? [String(recipe.blocks)] : []),
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const files = recipe.files ?? [];
    if (files.length > 0) {
      const script: string[] = ['mkdir /d'];
      files.forEach((size, i) => {
        const host = join(work, `f${i}`);
        writeFileSync(host, randomBytes(size, (recipe.seed ?? 1) * 1000 + i));
        script.push(`write ${host} /d/f${i}`);
      });
      files.forEach((_, i) => {
        if (i % 3 === 1) script.push(`rm /d/f${i}`);
      });
      writeFileSync(join(work, 'script'), `${script.join('\n')}\n`);
      execFileSync('debugfs', ['-w', '-f', join(work, 'script'), img], {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    }
    renameSync(img, path);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return path;
}

/** Header fields of `dumpe2fs -h`. */
function header(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * The used units (clusters, or blocks) according to e2fsprogs: `dumpe2fs` prints the free
 * ranges of every group ("Free blocks: a-b, c"; under bigalloc a and b are the first blocks of
 * the first and last free clusters). Used = complement. Block 0 is outside every group with
 * 1 KiB blocks and never listed as free, so it comes out used, as it must.
 */
export function dumpe2fsUsed(path: string): {
  used: Bitmap;
  unitSize: number;
  uninitGroups: number;
  text: string;
} {
  const text = execFileSync('dumpe2fs', [path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 1 << 28,
  });
  const blockSize = header(text, 'Block size')!;
  const clusterSize = header(text, 'Cluster size') ?? blockSize;
  const ratio = clusterSize / blockSize;
  const blocks = header(text, 'Block count')!;
  const units = Math.ceil(blocks / ratio);
  const used = new Bitmap(units).setAll();
  for (const m of text.matchAll(/^ {2}Free blocks: (.*)$/gm)) {
    for (const part of m[1]!.split(',')) {
      const r = part.trim();
      if (r === '') continue;
      const [a, b] = r.split('-').map(Number) as [number, number | undefined];
      const first = Math.floor(a / ratio);
      const last = Math.floor((b ?? a) / ratio);
      used.clearRange(first, last - first + 1);
    }
  }
  const uninitGroups = [...text.matchAll(/^Group \d+:.*BLOCK_UNINIT/gm)].length;
  return { used, unitSize: clusterSize, uninitGroups, text };
}

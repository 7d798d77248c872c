// Test support (not exported by the package): FAT images built by mkfs.fat and mtools through
// the @diskube/mkimage DSL, and the dosfstools / mtools views of their used clusters (partclone's
// comes from `partcloneDomain` in @diskube/mkimage/testing).

import { Bitmap } from '@diskube/bitmap';
import type { UsedBlocks, UsedBlocksOptions } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { buildImage } from '@diskube/mkimage';
import { requireTools, runTool } from '@diskube/mkimage/testing';
import { fatDriver } from './driver.js';

/** Tools every image test needs; missing ones skip locally and fail under CI=true. */
export const TOOLS = ['mkfs.vfat', 'fsck.fat', 'mcopy', 'mmd', 'mdel', 'partclone.fat'];
export const skipImages = !requireTools(TOOLS, 'fat image tests');

/**
 * Files for every image: a directory, text and random files, many small files in a
 * subdirectory, a file written into the holes left by deleting every other 8 KiB file (create,
 * delete, create: fragmented) and a deleted file (its clusters stay filled, free in the FAT).
 */
export const CONTENT = `
    dir /docs
    file /docs/a.txt 3K text
    file /docs/big.bin 300K random seed=2
    files /many 40 small seed=3
    files /frag 30 8K seed=5
    file /gone.bin 200K random seed=4
    delete /frag/f00[0-2][13579]
    file /frag.bin 100K random seed=6
    delete /gone.bin`;

/** A bare FAT volume of `size` with `options`, optionally prefilled with random bytes. */
export const fatSpec = (size: string, options: string, prefill = true): string =>
  `disk ${size}\n  filesystem fat ${options}\n${prefill ? '    prefill random seed=9\n' : ''}${CONTENT}\n`;

/** Builds (or takes from mkimage's cache) a spec's image; returns its path. Read-only. */
export async function image(spec: string): Promise<string> {
  return (await buildImage(spec)).image;
}

/** usedBlocks of an image file. */
export async function usedOf(path: string, options?: UsedBlocksOptions): Promise<UsedBlocks> {
  const source = await openFileSource(path);
  try {
    return await fatDriver.usedBlocks(source, options);
  } finally {
    await source.close();
  }
}

/** fsck.fat -n -v: FAT width and "files, used/total clusters" from its summary. */
export async function fsckSummary(
  path: string,
): Promise<{ bits: number; usedClusters: number; clusters: number; text: string }> {
  const { stdout } = await runTool('fsck.fat', ['-n', '-v', path]);
  const bits = /(\d+) bit entries/.exec(stdout);
  const summary = /(\d+) files, (\d+)\/(\d+) clusters/.exec(stdout);
  if (!bits || !summary) throw new Error(`unexpected fsck.fat output:\n${stdout}`);
  return {
    bits: Number(bits[1]),
    usedClusters: Number(summary[2]),
    clusters: Number(summary[3]),
    text: stdout,
  };
}

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' };

/**
 * mtools' view: the cluster chains (`mshowfat`) of every file and directory `mdir -/` lists,
 * plus the FAT32 root directory's. A bitmap with bit `c − 2` for cluster `c`.
 */
export async function mtoolsClusters(path: string, clusters: number): Promise<Bitmap> {
  const list = await runTool('mdir', ['-/', '-b', '-a', '-i', path, '::/'], { env: MTOOLS_ENV });
  const paths = ['::/', ...list.stdout.split('\n').filter((l) => l.startsWith('::/'))].map((p) =>
    p.length > 3 ? p.replace(/\/$/, '') : p,
  );
  const used = new Bitmap(clusters);
  for (let i = 0; i < paths.length; i += 200) {
    const out = await runTool('mshowfat', ['-i', path, ...paths.slice(i, i + 200)], {
      env: MTOOLS_ENV,
    });
    for (const m of out.stdout.matchAll(/<(\d+)(?:-(\d+))?>/g)) {
      const a = Number(m[1]);
      const b = Number(m[2] ?? m[1]);
      used.setRange(a - 2, b - a + 1);
    }
  }
  return used;
}

/** The clusters (bit `c − 2`) of a result's used map: blocks after the data region's start. */
export function usedClusters(result: UsedBlocks): Bitmap {
  const clusters = result.facts.clusters as number;
  const perCluster = (result.facts.clusterSize as number) / result.blockSize;
  const first = (result.facts.dataStart as number) / result.blockSize;
  const out = new Bitmap(clusters);
  result.used.forEachRun((start, length) => {
    const a = Math.max(start, first);
    const b = start + length;
    if (b > a) out.setRange((a - first) / perCluster, (b - a) / perCluster);
  }, first);
  return out;
}

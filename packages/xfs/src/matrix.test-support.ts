// The feature matrix of issue 12: the XFS images every driver test runs on.
import type { XfsRecipe } from './images.test-support.js';

export const M = 1024 * 1024;
/** Files of /d (f1 and f4 deleted) and 3000-byte files of /m (odd ones deleted). */
const FILES = [300_000, 5_000, 1_200_000, 70_000, 2_500_000, 0, 900_000, 33_333, 4_000_000, 12_000];
const content = (size: number, mkfs: string[], extra: Partial<XfsRecipe> = {}): XfsRecipe => ({
  size,
  mkfs,
  files: FILES,
  small: 200,
  prefill: size <= 128 * M,
  ...extra,
});

/** The feature matrix of issue 12. */
export const MATRIX: Record<string, XfsRecipe> = {
  'v5 defaults (4 KiB blocks, finobt, reflink, sparse inodes, bigtime)': content(64 * M, []),
  '1 KiB blocks, fragmented free space (two-level bnobt)': content(64 * M, ['-b', 'size=1024'], {
    small: 1500,
  }),
  '2 KiB blocks': content(64 * M, ['-b', 'size=2048']),
  '8 KiB blocks': content(64 * M, ['-b', 'size=8192']),
  '16 KiB blocks': content(128 * M, ['-b', 'size=16384']),
  '32 KiB blocks': content(256 * M, ['-b', 'size=32768']),
  '64 KiB blocks': content(512 * M, ['-b', 'size=65536']),
  '4 KiB sectors': content(64 * M, ['-s', 'size=4096']),
  'rmapbt and reflink': content(64 * M, ['-m', 'rmapbt=1,reflink=1']),
  'no finobt, reflink, sparse inodes or bigtime': content(64 * M, [
    '-m',
    'finobt=0,reflink=0,bigtime=0',
    '-i',
    'sparse=0',
  ]),
  'meta_uuid (uuid changed by xfs_admin -U after mkfs)': content(64 * M, [], {
    newUuid: '0f0e0d0c-0b0a-4908-8706-050403020100',
  }),
  'v4 (crc=0)': content(64 * M, ['-m', 'crc=0']),
  'v4, 512-byte blocks': content(64 * M, ['-m', 'crc=0', '-b', 'size=512'], { small: 800 }),
  '32 AGs': content(512 * M, ['-d', 'agcount=32']),
  'short last AG (5 × 32 MiB + 20 MiB, in a larger file)': content(256 * M, [
    '-d',
    'agsize=32m,size=180m',
  ]),
};

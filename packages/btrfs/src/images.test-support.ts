// Test support (not exported by the package): real btrfs images from the mkimage DSL (built by
// `mkfs.btrfs --rootdir`, never mounted), btrfs-progs' own view of their used blocks, and the
// images the DSL cannot express (a pending log tree). partclone's view comes from
// `partcloneDomain` in @diskube/mkimage/testing.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Bitmap } from '@diskube/bitmap';
import { crc32c } from '@diskube/core';
import { bitmapOfRanges } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { partcloneDomain } from '@diskube/mkimage/testing';

/**
 * Bare btrfs images of 128 MiB (mkfs.btrfs refuses devices under 109 MiB; with data=dup its
 * --rootdir sizing wants more).
 */
export const MATRIX: Record<string, string> = {
  'mkfs defaults (metadata DUP, skinny metadata, free-space tree)': `disk 128M
  filesystem btrfs label=defaults
    prefill random seed=11
    file /a 10K random seed=1
    files /s 40 small seed=2
    file /big 5M random seed=3
    file /d/e/zeros 200K zeros
    append /a 5K random seed=4
`,
  'metadata=single, data single': `disk 128M
  filesystem btrfs metadata=single
    prefill random seed=12
    files /s 30 small seed=5
    file /big 3M random seed=6
`,
  'metadata=dup, data=dup, 4 KiB nodes (multi-level trees), no skinny metadata': `disk 256M
  filesystem btrfs metadata=dup data=dup nodesize=4K features=^skinny-metadata
    prefill random seed=13
    files /s 400 small seed=7
    files /m 150 12K seed=8
    file /big 2M random seed=9
`,
  'mixed block groups (data and metadata in the same chunks)': `disk 128M
  filesystem btrfs mixed
    prefill random seed=14
    files /s 30 small seed=5
    files /m 20 20K seed=15
    file /big 3M random seed=6
`,
  // Fedora's layout: subvolumes root and home (here also a read-only one and a default one),
  // zstd-compressed extents beside incompressible ones, and inline files (under 2 KiB).
  'subvolumes (rw, ro, default), zstd compression, inline files': `disk 128M
  filesystem btrfs compress=zstd:3 subvol=root,home,ro:snap,default:var
    prefill random seed=16
    file /root/etc/os-release 2K text
    files /root/usr/lib 150 small seed=17
    file /home/u/notes.txt 3M text
    file /home/u/photo 2M random seed=18
    file /snap/etc/fstab 700 text
    file /var/log/messages 600K text
    file /top.txt "outside every subvolume"
`,
  'lzo compression, nested subvolumes': `disk 128M
  filesystem btrfs compress=lzo subvol=a,a/b
    prefill random seed=19
    file /a/one 1M text
    file /a/b/two 1200K text
    files /a/b/small 40 small seed=20
    file /plain 300K random seed=21
`,
};

/** An ext4 volume for btrfs-convert (which needs the block size to be the page size). */
export const CONVERTED_EXT4 = `disk 160M
  filesystem ext4 block=4K
    prefill random seed=22
    file /big 3M random seed=23
    files /etc 120 small seed=24
    file /var/log/syslog 1M text
    file /stale 4M random seed=25
    delete /stale
`;

export async function buildBtrfs(spec: string): Promise<string> {
  return (await buildImage(spec)).image;
}

/** A copy of the image file in memory, for patching. */
export function readImage(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** What btrfs-progs' dump of every tree shows: subvolumes, compressed and inline extents. */
export function progsContent(path: string): {
  subvolumes: number;
  compressed: number;
  inline: number;
  sharedExtents: number;
} {
  const all = dumpTree(path, 'root');
  const everything = execFileSync('btrfs', ['inspect-internal', 'dump-tree', path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
  return {
    subvolumes: new Set([...all.matchAll(/key \((\d+) ROOT_ITEM /g)].map((m) => Number(m[1]))).size,
    compressed: [...everything.matchAll(/compression [1-9]/g)].length,
    inline: [...everything.matchAll(/inline extent data size/g)].length,
    sharedExtents: [...dumpTree(path, 'extent').matchAll(/refs ([2-9]|\d\d+) gen \d+ flags DATA/g)]
      .length,
  };
}

function dumpTree(path: string, tree: string): string {
  return execFileSync('btrfs', ['inspect-internal', 'dump-tree', '-t', tree, path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
}

interface ToolChunk {
  logical: number;
  length: number;
  stripes: number[];
}

/** Chunks as `btrfs inspect-internal dump-tree -t chunk` prints them. */
export function toolChunks(path: string): ToolChunk[] {
  const out: ToolChunk[] = [];
  for (const block of dumpTree(path, 'chunk').split(/\n(?=\s+item \d+ key)/)) {
    const key = /key \(FIRST_CHUNK_TREE CHUNK_ITEM (\d+)\)/.exec(block);
    if (!key) continue;
    const length = Number(/length (\d+)/.exec(block)![1]);
    const stripes = [...block.matchAll(/stripe \d+ devid \d+ offset (\d+)/g)].map((m) =>
      Number(m[1]),
    );
    out.push({ logical: Number(key[1]), length, stripes });
  }
  return out;
}

/**
 * btrfs-progs' view, built from its own dump of the chunk and extent trees: the first MiB, the
 * superblock copies inside the device, and every EXTENT_ITEM / METADATA_ITEM in each copy of its
 * chunk. Independent of the driver's parser (only the policy is the same).
 */
export function progsView(path: string, blockSize: number, blockCount: number): Bitmap {
  const chunks = toolChunks(path);
  const device = blockSize * blockCount;
  const nodesize = Number(
    /nodesize\s+(\d+)/.exec(
      execFileSync('btrfs', ['inspect-internal', 'dump-super', path], { encoding: 'utf8' }),
    )![1],
  );
  const ranges: Array<[number, number]> = [[0, 1 << 20]];
  for (const at of [0x10000, 0x4000000, 0x4000000000])
    if (at + 4096 <= device) ranges.push([at, 4096]);
  for (const m of dumpTree(path, 'extent').matchAll(
    /key \((\d+) (EXTENT_ITEM|METADATA_ITEM) (\d+)\)/g,
  )) {
    const start = Number(m[1]);
    const length = m[2] === 'EXTENT_ITEM' ? Number(m[3]) : nodesize;
    const c = chunks.find((x) => start >= x.logical && start < x.logical + x.length)!;
    for (const s of c.stripes) ranges.push([s + start - c.logical, length]);
  }
  return bitmapOfRanges(ranges, blockSize, blockCount);
}

/** partclone.btrfs's view (`partclone.btrfs -D`). */
export async function partcloneView(
  path: string,
  blockSize: number,
  blockCount: number,
): Promise<Bitmap> {
  return bitmapOfRanges(await partcloneDomain('btrfs', path), blockSize, blockCount);
}

/**
 * What diskube keeps beyond partclone, each set exact: the rest of the first MiB (partclone
 * copies only up to the primary superblock), and the second copy of every DUP block whose
 * first copy partclone keeps (partclone copies one copy of DUP chunks).
 */
export function partcloneExplained(
  path: string,
  oracle: Bitmap,
  blockSize: number,
): Array<{ blocks: Bitmap; why: string }> {
  const reserved = new Bitmap(oracle.length).setRange(0, (1 << 20) / blockSize);
  const mirror = new Bitmap(oracle.length);
  for (const c of toolChunks(path)) {
    if (c.stripes.length !== 2) continue;
    const [a, b] = [c.stripes[0]! / blockSize, c.stripes[1]! / blockSize];
    for (let i = 0; i < c.length / blockSize; i++) if (oracle.get(a + i)) mirror.set(b + i);
  }
  return [
    { blocks: reserved, why: 'the first MiB: never allocated, boot area and primary superblock' },
    { blocks: mirror, why: 'second copies of DUP blocks (partclone copies the first only)' },
  ];
}

/** Rewrites the primary superblock with its checksum recomputed after `patch`. */
export function patchSuperblock(image: Uint8Array, patch: (view: DataView) => void): Uint8Array {
  const out = image.slice();
  const view = new DataView(out.buffer, 0x10000, 4096);
  patch(view);
  view.setUint32(0, crc32c(out.subarray(0x10020, 0x11000)), true);
  return out;
}

/** The image with a (fake) log tree root in the superblock: a crash after an fsync. */
export function withLogRoot(image: Uint8Array): Uint8Array {
  return patchSuperblock(image, (v) => v.setBigUint64(0x60, 0x1e00000n, true));
}

/** Logical address and level of a tree's root block, from `dump-tree -t TREE` (first line). */
export function treeRoot(path: string, tree: string): { logical: number; level: number } {
  const m = /^(?:leaf|node) (\d+) (?:items|level (\d+))/m.exec(dumpTree(path, tree))!;
  return { logical: Number(m[1]), level: Number(m[2] ?? 0) };
}

/** Physical offsets of every copy of logical address `logical` (btrfs-progs' chunk map). */
export function copiesOf(path: string, logical: number): number[] {
  const c = toolChunks(path).find((x) => logical >= x.logical && logical < x.logical + x.length)!;
  return c.stripes.map((s) => s + logical - c.logical);
}

/** Patches the tree block at each of `copies` (nodesize bytes), then recomputes its crc32c. */
export function patchNode(
  image: Uint8Array,
  copies: number[],
  nodesize: number,
  patch: (view: DataView) => void,
): Uint8Array {
  const out = image.slice();
  for (const physical of copies) {
    const view = new DataView(out.buffer, physical, nodesize);
    patch(view);
    view.setUint32(0, crc32c(out.subarray(physical + 0x20, physical + nodesize)), true);
  }
  return out;
}

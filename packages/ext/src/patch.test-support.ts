// Test support (not exported by the package): byte patches of real images that keep every
// checksum valid, so that only the intended lie remains, and e2fsprogs' view of which blocks
// the inodes reference (the oracle: what e2fsck's pass 1 would find).

import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import type { CoreReason } from '@diskube/core';
import { buildImage } from '@diskube/mkimage';
import { RO_COMPAT } from './features.js';
import { blockBitmapChecksum, groupDescriptorChecksum } from './group-descriptor.js';
import { setU16, setU32 } from './hex.test-support.js';
import type { ExtReason } from './reasons.js';
import {
  checksumSeed,
  parseSuperblock,
  type Superblock,
  superblockChecksum,
} from './superblock.js';

const CACHE = join(tmpdir(), 'diskube-ext-mkimage');

/** A DSL recipe: one filesystem with files, two of them deleted (their old data left behind). */
export const fs = (disk: string, options: string, prefill = true): string => `disk ${disk}
  filesystem ${options} uuid=01234567-89ab-cdef-0123-456789abcdef
${prefill ? '    prefill random seed=3\n' : ''}    file /d/a 300K random seed=1
    file /d/b 5K random seed=2
    file /d/c 1200K random seed=3
    file /d/e 70K random seed=4
    file /d/f 900K random seed=5
    files /many 30 small
    delete /d/b
    delete /d/e
`;

/** The image file of a DSL recipe (built once, cached). Treat it as read-only. */
export const pathOf = async (spec: string): Promise<string> =>
  (await buildImage(spec, { cacheDir: CACHE })).image;
/** A private copy of the image's bytes, to patch. */
export const load = async (spec: string): Promise<Uint8Array> =>
  new Uint8Array(await readFile(await pathOf(spec)));

export const u32 = (b: Uint8Array, o: number): number =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);

export interface Caught {
  code?: string;
  reason?: ExtReason | CoreReason;
  message?: string;
}

/** The error a promise rejects with, or `{ code: 'none' }` when it resolves. */
export async function failure(promise: Promise<unknown>): Promise<Caught> {
  try {
    await promise;
  } catch (e) {
    return e as Caught;
  }
  return { code: 'none' };
}

export function superOf(img: Uint8Array): Superblock {
  return parseSuperblock(img.subarray(1024, 2048));
}

/** Patch superblock fields, then fix s_checksum so only the intended change is seen. */
export function patchSuper(
  img: Uint8Array,
  patch: (sb: Uint8Array) => void,
  fixChecksum = true,
): void {
  const sb = img.subarray(1024, 2048);
  patch(sb);
  if (fixChecksum) setU32(sb, 0x3fc, superblockChecksum(sb));
}

/** Byte offset of descriptor `g` in the primary table (classic layout). */
export function descAt(img: Uint8Array, g: number): number {
  const sb = superOf(img);
  return (sb.blockSize === 1024 ? 2 : 1) * sb.blockSize + g * sb.descSize;
}

/** Patch descriptor `g` of the primary table, then fix its checksum. */
export function patchDesc(
  img: Uint8Array,
  g: number,
  patch: (d: Uint8Array) => void,
  fixChecksum = true,
): void {
  const sb = superOf(img);
  const at = descAt(img, g);
  patch(img.subarray(at, at + sb.descSize));
  if (!fixChecksum) return;
  if (!(sb.featureRoCompat & (RO_COMPAT.metadata_csum | RO_COMPAT.uninit_bg))) return;
  const method =
    sb.featureRoCompat & RO_COMPAT.metadata_csum
      ? ({ metadataCsum: true, seed: checksumSeed(sb) } as const)
      : ({ metadataCsum: false, uuid: sb.uuid } as const);
  setU16(img, at + 0x1e, groupDescriptorChecksum(img, at, sb.descSize, g, method));
}

/** Descriptor fields as stored (low halves; these test images have no _hi parts in use). */
export function descriptor(img: Uint8Array, g: number): { blockBitmap: number; free: number } {
  const at = descAt(img, g);
  return { blockBitmap: u32(img, at), free: u16(img, at + 0xc) };
}

/**
 * Mark `blocks` free in their groups' block bitmaps, as a lying bitmap would. `checksums` fixes
 * the bitmap checksums (metadata_csum); `counts` also lowers each descriptor's free count and
 * the superblock's total, so that no cheap cross-check can see it: only the walk can.
 */
export function freeInBitmap(
  img: Uint8Array,
  blocks: number[],
  fix: { checksums: boolean; counts: boolean },
): void {
  const sb = superOf(img);
  const touched = new Map<number, number>();
  for (const b of blocks) {
    const g = Math.floor((b - sb.firstDataBlock) / sb.blocksPerGroup);
    const bit = b - sb.firstDataBlock - g * sb.blocksPerGroup;
    const at = descriptor(img, g).blockBitmap * sb.blockSize + (bit >>> 3);
    if ((img[at]! & (1 << (bit & 7))) === 0) continue;
    img[at] = img[at]! & ~(1 << (bit & 7));
    touched.set(g, (touched.get(g) ?? 0) + 1);
  }
  const csum = fix.checksums && (sb.featureRoCompat & RO_COMPAT.metadata_csum) !== 0;
  let total = 0;
  for (const [g, n] of touched) {
    total += n;
    patchDesc(img, g, (d) => {
      if (fix.counts) setU16(d, 0xc, u16(d, 0xc) + n);
      if (csum) {
        const at = descriptor(img, g).blockBitmap * sb.blockSize;
        const c = blockBitmapChecksum(img, at, sb.clustersPerGroup, checksumSeed(sb), 64);
        setU16(d, 0x18, c & 0xffff);
        if (sb.descSize >= 64) setU16(d, 0x38, c >>> 16);
      }
    });
  }
  if (fix.counts) patchSuper(img, (s) => setU32(s, 0xc, u32(s, 0xc) + total));
}

/**
 * The blocks each in-use inode references according to debugfs (`stat <N>` lists data,
 * extent-tree and indirect blocks), for the inodes dumpe2fs shows in use: e2fsck pass 1's view.
 * The same parsing as apps/fuzz's extReferenced.
 */
export function referencedByInodes(image: string): Map<number, number[]> {
  const dump = execFileSync('dumpe2fs', [image], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 1 << 28,
  });
  const perGroup = Number(/^Inodes per group:\s+(\d+)/m.exec(dump)?.[1]);
  const inodes: number[] = [];
  for (const [g, m] of [...dump.matchAll(/^\s+Free inodes: (.*)$/gm)].entries()) {
    const free = new Set<number>();
    for (const part of m[1]!.split(',').map((p) => p.trim())) {
      if (part === '') continue;
      const [a, b] = part.split('-').map(Number) as [number, number | undefined];
      for (let i = a; i <= (b ?? a); i++) free.add(i);
    }
    for (let i = g * perGroup + 1; i <= (g + 1) * perGroup; i++) if (!free.has(i)) inodes.push(i);
  }
  const out = execFileSync('debugfs', ['-f', '-', image], {
    input: inodes.map((i) => `stat <${i}>`).join('\n'),
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'ignore'],
    maxBuffer: 1 << 28,
  });
  const result = new Map<number, number[]>();
  let current: number[] | null = null;
  let listing = false;
  for (const line of out.split('\n')) {
    const inode = /^Inode: (\d+)/.exec(line);
    if (inode) {
      current = [];
      result.set(Number(inode[1]), current);
      listing = false;
    } else if (/^(BLOCKS|EXTENTS):/.test(line)) {
      listing = true;
    } else if (line.trim() === '' || line.startsWith('TOTAL') || line.startsWith('debugfs')) {
      listing = false;
    } else if (listing && current) {
      for (const m of line.matchAll(/\):(\d+)(?:-(\d+))?/g)) {
        for (let b = Number(m[1]); b <= Number(m[2] ?? m[1]); b++) current.push(b);
      }
    }
    const acl = /File ACL: (\d+)/.exec(line);
    if (acl && current && Number(acl[1]) !== 0) current.push(Number(acl[1]));
  }
  return result;
}

/** Every block any inode references, as a bitmap of `length` units of `ratio` blocks. */
export function referencedMap(byInode: Map<number, number[]>, length: number, ratio = 1): Bitmap {
  const map = new Bitmap(length);
  for (const blocks of byInode.values()) for (const b of blocks) map.set(Math.floor(b / ratio));
  return map;
}

/**
 * Test-only helpers (Node): build real NTFS images with ntfs-3g's userspace tools, cached by spec
 * hash in the OS temp directory, and read ntfs-3g's own view of them as an oracle.
 * Not exported from the package.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';

export type Step =
  /** Copy a file of `size` deterministic random bytes to `/name` with ntfscp. */
  | { op: 'file'; name: string; size: number; seed?: number; head?: string }
  /** `count` files `/prefix0…` of sizes cycling through `sizes`; with `untilFull`, stop when full. */
  | { op: 'files'; prefix: string; count: number; sizes: number[]; untilFull?: boolean }
  /** Fill the free space with preallocated (ntfsfallocate) files `/prefix0…`. */
  | { op: 'fill'; prefix: string }
  /** ntfstruncate every `every`-th file `/prefix0…` below `count` to 0: frees scattered clusters. */
  | { op: 'punch'; prefix: string; count: number; every: number }
  /** ntfstruncate: shrinking frees clusters but leaves their stale bytes on disk. */
  | { op: 'truncate'; name: string; size: number }
  /** ntfsfallocate: allocated but uninitialized clusters. */
  | { op: 'fallocate'; name: string; size: number };

export interface NtfsImageSpec {
  size: number;
  cluster: number;
  sectorSize?: number;
  label?: string;
  /** Seed of the random bytes the image is pre-filled with before mkntfs -Q. */
  seed?: number;
  steps?: Step[];
}

/** What the image tests run: `requireTools(NTFS_TOOLS, …)` from @diskube/mkimage/testing. */
export const NTFS_TOOLS = [
  'mkntfs',
  'ntfscp',
  'ntfscat',
  'ntfstruncate',
  'ntfsfallocate',
  'partclone.ntfs',
];

/** Deterministic pseudo-random bytes (xorshift32), fast enough for tens of MiB. */
export function randomFill(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, length);
}

const CACHE = join(tmpdir(), 'diskube-ntfs-test-images');

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
}

/** ntfscp fails with "No space left" when the volume is full; `fill` steps stop there. */
function tryRun(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** Inode (MFT record) number of a file in the root directory, from `ntfsls -i`. */
function inodeOf(image: string, name: string): number {
  for (const line of run('ntfsls', ['-f', '-i', image]).split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && m[2] === name) return Number(m[1]);
  }
  throw new Error(`${name} not found in ${image}`);
}

/** Build (or fetch from the cache) the image for `spec`; returns its path. Treat it as read-only. */
export function buildNtfsImage(spec: NtfsImageSpec): string {
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 2, spec }))
    .digest('hex')
    .slice(0, 20);
  const path = join(CACHE, `${key}.img`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, `${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const img = join(work, 'image');
  // Pre-fill with random bytes so stale data is visible and free clusters are never zero.
  const fd = openSync(img, 'w');
  const chunk = randomFill(1 << 20, spec.seed ?? 1);
  for (let off = 0; off < spec.size; off += chunk.length) {
    const n = Math.min(chunk.length, spec.size - off);
    chunk[0] = (off / chunk.length) & 0xff; // vary the chunks a little
    writeSync(fd, chunk, 0, n, off);
  }
  closeSync(fd);
  const args = ['-Q', '-F', '-q', '-c', String(spec.cluster), '-s', String(spec.sectorSize ?? 512)];
  if (spec.label) args.push('-L', spec.label);
  run('mkntfs', [...args, img]);
  let n = 0;
  const content = (size: number, seed: number, head = '') => {
    const file = join(work, `c${n++}`);
    const bytes = randomFill(size, seed);
    bytes.set(new TextEncoder().encode(head).subarray(0, size));
    writeFileSync(file, bytes);
    return file;
  };
  for (const step of spec.steps ?? []) {
    if (step.op === 'file') {
      run('ntfscp', [
        '-q',
        '-f',
        img,
        content(step.size, step.seed ?? 7, step.head),
        `/${step.name}`,
      ]);
    } else if (step.op === 'files') {
      const sources = step.sizes.map((s, i) => content(s, 100 + i));
      for (let i = 0; i < step.count; i++) {
        const args = ['-q', '-f', img, sources[i % sources.length]!, `/${step.prefix}${i}`];
        if (!step.untilFull) run('ntfscp', args);
        else if (!tryRun('ntfscp', args)) break;
      }
    } else if (step.op === 'fill') {
      // One preallocated file per round, sized from ntfsinfo's free-cluster count, halving on failure.
      const empty = content(0, 1);
      for (let i = 0, size = 0; i < 64; i++) {
        const free = /Free Clusters:\s*(\d+)/.exec(run('ntfsinfo', ['-f', '-m', img]));
        const clusters = Number(free?.[1] ?? 0) - 2;
        if (clusters < 1) break;
        size = size > 0 && size < clusters * spec.cluster ? size : clusters * spec.cluster;
        const name = `/${step.prefix}${i}`;
        if (!tryRun('ntfscp', ['-q', '-f', img, empty, name])) break;
        if (!tryRun('ntfsfallocate', ['-f', '-l', String(size), img, name]))
          size = Math.floor(size / 2 / spec.cluster) * spec.cluster;
        if (size < spec.cluster) break;
      }
    } else if (step.op === 'punch') {
      const inodes = new Map<string, number>();
      for (const line of run('ntfsls', ['-f', '-i', img]).split('\n')) {
        const m = /^\s*(\d+)\s+(.*)$/.exec(line);
        if (m) inodes.set(m[2]!, Number(m[1]));
      }
      for (let i = 0; i < step.count; i += step.every) {
        const inode = inodes.get(`${step.prefix}${i}`);
        if (inode !== undefined) run('ntfstruncate', ['-q', '-f', img, String(inode), '0']);
      }
    } else if (step.op === 'truncate') {
      run('ntfstruncate', ['-q', '-f', img, String(inodeOf(img, step.name)), String(step.size)]);
    } else {
      run('ntfsfallocate', ['-f', '-l', String(step.size), img, `/${step.name}`]);
    }
  }
  renameSync(img, path);
  rmSync(work, { recursive: true, force: true });
  return path;
}

/** ntfs-3g's view of the cluster bitmap: `ntfscat -i 6` (unnamed $DATA of $Bitmap). */
export function ntfs3gBitmap(image: string, clusterCount: number): Bitmap {
  const bytes = execFileSync('ntfscat', ['-f', '-i', '6', image], { maxBuffer: 1 << 30 });
  return Bitmap.fromBytes(
    new Uint8Array(bytes.buffer, bytes.byteOffset, Math.ceil(clusterCount / 8)),
    clusterCount,
  );
}

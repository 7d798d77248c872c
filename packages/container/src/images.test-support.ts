// Test support (not exported): real container images made by qemu-img from one raw image with
// deterministic random data in a few regions and zeros elsewhere. Cached under the OS temp
// directory, keyed by RECIPE_VERSION; treat the files as read-only.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from '@diskube/core/test';

// v3: content now comes from core's randomBytes.
const RECIPE_VERSION = 'v3';
const CACHE = join(tmpdir(), `diskube-container-test-images-${RECIPE_VERSION}`);

/** True when qemu-img runs. Under CI=true a missing tool is an error, not a skip. */
export function haveQemuImg(): boolean {
  const ok = spawnSync('qemu-img', ['--version'], { stdio: 'ignore' }).error === undefined;
  if (!ok && process.env.CI === 'true') throw new Error('qemu-img is required under CI=true');
  if (!ok) console.warn('\n!!! qemu-img is not installed: skipping the container tests !!!\n');
  return ok;
}

/** Deterministic bytes (core's seeded PRNG). */
export const random = randomBytes;

export const RAW_SIZE = 64 * 1024 * 1024;

/** Data regions of the raw image: [offset, length, kind]. Everything else is zero. */
const REGIONS: Array<[number, number, 'random' | 'text']> = [
  [0, 1024 * 1024, 'random'],
  [5 * 1024 * 1024 + 12345, 700 * 1024, 'random'],
  [9 * 1024 * 1024, 1536 * 1024, 'text'],
  [20 * 1024 * 1024 - 4096, 2 * 1024 * 1024 + 8192, 'random'],
  [40 * 1024 * 1024 + 65536 * 3 + 100, 1000, 'random'],
  [RAW_SIZE - 512 * 1024, 512 * 1024, 'random'],
];

function buildRaw(path: string, size: number): void {
  const bytes = new Uint8Array(size);
  let seed = 11;
  for (const [offset, length, kind] of REGIONS) {
    if (offset + length > size) continue;
    if (kind === 'random') bytes.set(random(length, seed++), offset);
    else {
      const line = new TextEncoder().encode('diskube container test line, compressible text. ');
      for (let i = 0; i < length; i++) bytes[offset + i] = line[i % line.length]!;
    }
  }
  writeFileSync(path, bytes);
}

export type Variant =
  | 'qcow2'
  | 'qcow2-v2'
  | 'qcow2-deflate'
  | 'qcow2-zstd'
  | 'vdi'
  | 'vdi-static'
  | 'vmdk-sparse'
  | 'vmdk-stream'
  | 'vmdk-flat'
  | 'vpc-dynamic'
  | 'vpc-fixed'
  | 'vhdx';

const CONVERT: Record<Variant, string[]> = {
  qcow2: ['-O', 'qcow2'],
  'qcow2-v2': ['-O', 'qcow2', '-o', 'compat=0.10,cluster_size=4096'],
  'qcow2-deflate': ['-c', '-O', 'qcow2'],
  'qcow2-zstd': ['-c', '-O', 'qcow2', '-o', 'compression_type=zstd'],
  vdi: ['-O', 'vdi'],
  'vdi-static': ['-O', 'vdi', '-o', 'static=on'],
  'vmdk-sparse': ['-O', 'vmdk', '-o', 'subformat=monolithicSparse'],
  'vmdk-stream': ['-O', 'vmdk', '-o', 'subformat=streamOptimized'],
  'vmdk-flat': ['-O', 'vmdk', '-o', 'subformat=monolithicFlat'],
  'vpc-dynamic': ['-O', 'vpc', '-o', 'subformat=dynamic,force_size=on'],
  'vpc-fixed': ['-O', 'vpc', '-o', 'subformat=fixed,force_size=on'],
  vhdx: ['-O', 'vhdx', '-o', 'block_size=1M'],
};

export const VARIANTS = Object.keys(CONVERT) as Variant[];

/** Path of the raw image (built once). */
export function rawImage(size = RAW_SIZE): string {
  mkdirSync(CACHE, { recursive: true });
  const path = join(CACHE, `raw-${size}.img`);
  if (!existsSync(path)) {
    const tmp = `${path}.${process.pid}.tmp`;
    buildRaw(tmp, size);
    renameSync(tmp, path);
  }
  return path;
}

/** Path of `variant` converted from the raw image (for vmdk-flat: the descriptor file). */
export function containerImage(variant: Variant, size = RAW_SIZE): string {
  const raw = rawImage(size);
  const dir = join(CACHE, `${variant}-${size}`);
  const path = join(dir, 'disk');
  if (existsSync(path)) return path;
  // Test files run in parallel workers: convert into a private directory, then rename it into
  // place (atomic); a worker that loses the race drops its copy. The directory keeps the name
  // `disk` that qemu-img writes into a monolithicFlat descriptor.
  const work = `${dir}.${process.pid}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  execFileSync('qemu-img', ['convert', '-f', 'raw', ...CONVERT[variant], raw, join(work, 'disk')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    renameSync(work, dir);
  } catch {
    rmSync(work, { recursive: true, force: true });
  }
  return path;
}

export function readRaw(size = RAW_SIZE): Uint8Array {
  return new Uint8Array(readFileSync(rawImage(size)));
}

/** The `[offset, length]` data regions of the raw image, for tests that check zero ranges. */
export function dataRegions(size = RAW_SIZE): Array<[number, number]> {
  return REGIONS.filter(([o, l]) => o + l <= size).map(([o, l]) => [o, l]);
}

export { execFileSync };

/** A GUID's 16 bytes in the Microsoft mixed-endian layout (VHDX, VDI). */
export function guidBytes(text: string): Uint8Array {
  const hex = text.replace(/-/g, '');
  const b = Uint8Array.from({ length: 16 }, (_, i) =>
    Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16),
  );
  return Uint8Array.from([
    b[3]!,
    b[2]!,
    b[1]!,
    b[0]!,
    b[5]!,
    b[4]!,
    b[7]!,
    b[6]!,
    ...b.subarray(8),
  ]);
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Add a Parent Locator metadata item ([MS-VHDX] §2.6.2.6) to a qemu-img VHDX. */
export function withParentLocator(
  image: Uint8Array,
  pairs: Record<string, string> | undefined,
  hasParent: boolean,
) {
  const b = image.slice();
  const v = dv(b);
  const regions = 192 * 1024;
  let meta = -1;
  for (let i = 0; i < v.getUint32(regions + 8, true); i++) {
    const at = regions + 16 + i * 32;
    if (b[at] === 0x06) meta = Number(v.getBigUint64(at + 16, true)); // 8B7CA206-…
  }
  const count = v.getUint16(meta + 10, true);
  let free = 64 * 1024;
  let fileParameters = -1;
  for (let i = 0; i < count; i++) {
    const at = meta + 32 + i * 32;
    const end = v.getUint32(at + 16, true) + v.getUint32(at + 20, true);
    free = Math.max(free, Math.ceil(end / 8) * 8);
    if (b[at] === 0x37) fileParameters = meta + v.getUint32(at + 16, true); // CAA16737-…
  }
  if (hasParent) b[fileParameters + 4]! |= 2;
  if (!pairs) return b;
  // The item: LocatorType GUID, Reserved, KeyValueCount, entries, then UTF-16LE strings.
  const keys = Object.entries(pairs);
  const item = new Uint8Array(20 + keys.length * 12 + 4096);
  const iv = dv(item);
  item.set(guidBytes('b04aefb7-d19e-4a81-b789-25b8e9445913'));
  iv.setUint16(18, keys.length, true);
  let text = 20 + keys.length * 12;
  const put = (s: string) => {
    const at = text;
    for (let i = 0; i < s.length; i++) iv.setUint16(at + i * 2, s.charCodeAt(i), true);
    text += s.length * 2;
    return at;
  };
  keys.forEach(([k, value], i) => {
    const e = 20 + i * 12;
    iv.setUint32(e, put(k), true);
    iv.setUint32(e + 4, put(value), true);
    iv.setUint16(e + 8, k.length * 2, true);
    iv.setUint16(e + 10, value.length * 2, true);
  });
  b.set(item.subarray(0, text), meta + free);
  const entry = meta + 32 + count * 32;
  b.set(guidBytes('a8d35f2d-b30b-454d-abf7-d3d84834ab0c'), entry);
  v.setUint32(entry + 16, free, true);
  v.setUint32(entry + 20, text, true);
  v.setUint32(entry + 24, 0b110, true); // IsVirtualDisk | IsRequired
  v.setUint16(meta + 10, count + 1, true);
  return b;
}

// Test helpers, exported as `@diskube/mkimage/testing`: tool checks, partition extraction, oracles.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { buildImage, type Manifest, type ManifestPartition } from './build.js';
import { chunks } from './content.js';
import { hasTool, run } from './tools.js';

/**
 * Tools missing on this machine. Tests that need them skip locally with a loud warning; under
 * CI=true the caller's "tools are installed" test fails instead.
 */
export async function missingTools(tools: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) if (!(await hasTool(t))) missing.push(t);
  if (missing.length > 0 && process.env.CI !== 'true') {
    console.warn(
      `\n*** mkimage tests SKIPPED: missing system tools ${missing.join(', ')} — install e2fsprogs ntfs-3g dosfstools mtools fdisk gcc ***\n`,
    );
  }
  return missing;
}

export async function scratchDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mkimage-test-'));
}

/** Copies one partition out of a disk image into its own file. */
export async function extract(image: string, p: ManifestPartition, dir: string): Promise<string> {
  const out = join(dir, `p${p.index}-${p.offset}.img`);
  const a = await open(image, 'r');
  const b = await open(out, 'w');
  try {
    await b.truncate(p.size);
    const buf = Buffer.alloc(1 << 20);
    for (let at = 0; at < p.size; at += buf.length) {
      const n = Math.min(buf.length, p.size - at);
      await a.read(buf, 0, n, p.offset + at);
      if (buf.subarray(0, n).some((x) => x !== 0)) await b.write(buf, 0, n, at);
    }
  } finally {
    await a.close();
    await b.close();
  }
  return out;
}

/** Runs the filesystem's own checker read-only; resolves to its output, rejects on errors. */
export async function fsck(fs: string, part: string): Promise<string> {
  if (fs.startsWith('ext')) return (await run('e2fsck', ['-fn', part])).stdout;
  if (fs === 'ntfs') {
    // ntfsfix -n exits 0 and prints "processed successfully" on a sound volume, 1 otherwise.
    const r = await run('ntfsfix', ['-n', part]);
    if (!/processed successfully/.test(r.stdout)) throw new Error(`ntfsfix: ${r.stdout}`);
    // ntfsfix only checks mountability, $MFT/$MFTMirr and the boot sectors: also walk every
    // directory index through libntfs-3g.
    const ls = await run('ntfsls', ['-R', '-a', '-p', '/', part]);
    if (ls.stderr.trim() !== '') throw new Error(`ntfsls: ${ls.stderr}`);
    return r.stdout + ls.stdout;
  }
  if (fs === 'fat') return (await run('fsck.vfat', ['-n', part])).stdout;
  throw new Error(`no checker for ${fs}`);
}

/**
 * SHA-256 of every regular file in a filesystem image, read with the filesystem's own tools:
 * ext via `debugfs rdump` and FAT via `mcopy -s` (whole tree at once), NTFS via `ntfscat` for
 * each of `paths` (libntfs-3g has no recursive copy-out).
 */
export async function extractedFiles(
  fs: string,
  part: string,
  paths: string[],
  dir: string,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (fs === 'ntfs') {
    for (const p of paths) out.set(p, await ntfsSha(part, p));
    return out;
  }
  const tree = await mkdtemp(join(dir, 'tree-'));
  try {
    if (fs.startsWith('ext')) {
      const r = await run('debugfs', ['-R', `rdump / ${tree}`, part]);
      const errors = r.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
      if (errors.length > 0) throw new Error(`debugfs rdump: ${errors.join(' / ')}`);
      await rm(join(tree, 'lost+found'), { recursive: true, force: true });
    } else if (fs === 'fat') {
      await run('mcopy', ['-s', '-n', '-m', '-i', part, '::/', `${tree}/`], {
        env: { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' },
      });
    } else throw new Error(`no extractor for ${fs}`);
    for (const entry of await readdir(tree, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const host = join(entry.parentPath, entry.name);
      out.set(`/${relative(tree, host)}`, sha(await readFile(host)));
    }
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** ntfscat writes binary to stdout; collect it as bytes rather than text. */
async function ntfsSha(part: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const c = spawn('ntfscat', [part, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stdout.on('data', (d: Buffer) => h.update(d));
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('close', (code) =>
      code === 0 ? resolve(h.digest('hex')) : reject(new Error(`ntfscat ${path}: ${err}`)),
    );
  });
}

/** Byte offset of `needle` in the file, or -1 (scans in 16 MiB windows with overlap). */
export async function findBytes(file: string, needle: Uint8Array): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const win = 16 << 20;
    const buf = Buffer.alloc(win + needle.length);
    for (let at = 0; at < size; at += win) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      const i = buf.subarray(0, bytesRead).indexOf(needle);
      if (i >= 0) return at + i;
    }
    return -1;
  } finally {
    await fh.close();
  }
}

/** Every tool the build tests run. */
export const BUILD_TOOLS = [
  'mke2fs',
  'debugfs',
  'dumpe2fs',
  'e2fsck',
  'mkntfs',
  'ntfscat',
  'ntfsfix',
  'ntfsinfo',
  'ntfsls',
  'mkfs.vfat',
  'fsck.vfat',
  'mcopy',
  'mmd',
  'mdel',
  'mkswap',
  'sfdisk',
  'gcc',
];

/** Bytes of the random stream behind `random seed=N`. */
export const randomBytes = (seed: number, length: number): Buffer =>
  Buffer.concat([...chunks([{ kind: 'random', key: `seed:${seed}`, start: 0, length }])]);

/**
 * Builds a spec, then checks every filesystem partition with its own fsck and compares the
 * files extracted by the filesystem's own tools with the manifest: same paths, same SHA-256.
 */
export async function buildAndVerify(
  spec: string,
  cacheDir: string,
  work: string,
): Promise<{ image: string; manifest: Manifest }> {
  const built = await buildImage(spec, { cacheDir });
  for (const p of built.manifest.partitions) {
    if (!['ext2', 'ext3', 'ext4', 'ntfs', 'fat'].includes(p.fs)) continue;
    const part = await extract(built.image, p, work);
    await fsck(p.fs, part);
    const found = await extractedFiles(
      p.fs,
      part,
      p.files.map((f) => f.path),
      work,
    );
    // FAT names compare case-insensitively.
    const norm = (k: string) => (p.fs === 'fat' ? k.toLowerCase() : k);
    const want = new Map(p.files.map((f) => [norm(f.path), f.sha256]));
    const got = new Map([...found].map(([k, v]) => [norm(k), v]));
    expect(new Map([...got].sort()), `${p.fs} partition ${p.index}`).toEqual(
      new Map([...want].sort()),
    );
    await rm(part);
  }
  return built;
}

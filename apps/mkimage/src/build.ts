import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiskSpec } from './ast.js';
import { fileRecords, writeSegments } from './content.js';
import { stableUuid } from './fs/builder.js';
import { builderOf } from './fs/registry.js';
import { planContent } from './model.js';
import { parseSpec } from './parse.js';
import { run } from './run.js';
import { layout, sfdiskScript } from './table.js';

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface ManifestPartition {
  /** GPT 1…n; MBR primaries 1…4 and logical 5…; 0 when the disk has no table. */
  index: number;
  offset: number;
  size: number;
  fs: string;
  /** Filesystem options as given, plus what the tools chose (uuid, block size, features…). */
  options: Record<string, string>;
  /** Regular files that exist at the end of the spec, sorted by path. */
  files: ManifestFile[];
  /** Directories the spec created that exist at the end, sorted. */
  dirs: string[];
  /** MBR type byte (hex) or GPT type GUID; absent without a table. */
  type?: string;
  /** The logical volumes of an `lvm` partition. */
  volumes?: ManifestVolume[];
}

/** One logical volume of an `lvm` partition, with the PV bytes that hold it. */
export interface ManifestVolume {
  name: string;
  size: number;
  fs: string;
  options: Record<string, string>;
  files: ManifestFile[];
  dirs: string[];
  /**
   * The LV's segments in LV order: `start` and `length` in LV bytes; `areas` the byte offsets in
   * the partition of each stripe's first byte; `stripeSize` in bytes (0 when linear).
   */
  segments: Array<{ start: number; length: number; stripeSize: number; areas: number[] }>;
}

export interface Manifest {
  size: number;
  table: 'none' | 'mbr' | 'gpt';
  partitions: ManifestPartition[];
}

export interface BuildOptions {
  /** Where built images are kept (default `$DISKUBE_IMAGE_CACHE`, else node_modules/.cache/diskube-mkimage at the repo root). */
  cacheDir?: string;
}

/** Bumped whenever the bytes produced for a given spec change. */
const BUILDER_VERSION = 1;

/** Hash of the spec's meaning: positions and comments do not change it. */
export function specHash(spec: DiskSpec): string {
  const json = JSON.stringify(spec, (k, v) => (k === 'pos' ? undefined : v));
  return createHash('sha256').update(`mkimage v${BUILDER_VERSION}\n${json}`).digest('hex');
}

export function defaultCacheDir(): string {
  const env = process.env.DISKUBE_IMAGE_CACHE;
  if (env) return resolve(env);
  for (const start of [dirname(fileURLToPath(import.meta.url)), process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      if (existsSync(join(d, 'pnpm-workspace.yaml'))) {
        return join(d, 'node_modules', '.cache', 'diskube-mkimage');
      }
      if (dirname(d) === d) break;
    }
  }
  return join(tmpdir(), 'diskube-mkimage');
}

/**
 * Builds the image `spec` describes at `out` (replaced if present) and returns its manifest.
 * `work` is a private scratch directory.
 */
async function buildTo(
  spec: DiskSpec,
  out: string,
  work: string,
  helperDir: string,
): Promise<Manifest> {
  const id = specHash(spec);
  const lay = layout(spec);
  const plans = lay.partitions.map((p) =>
    planContent(p.fs, builderOf(p.fs.type)!.caseInsensitive === true),
  );
  const disk = await open(out, 'w');
  try {
    await disk.truncate(spec.size);
  } finally {
    await disk.close();
  }

  const manifest: Manifest = { size: spec.size, table: spec.table, partitions: [] };
  for (const [i, p] of lay.partitions.entries()) {
    const plan = plans[i]!;
    const builder = builderOf(p.fs.type)!;
    const scratch = builder.inPlace ? null : join(work, `part-${p.index}.img`);
    const target = scratch ?? out;
    const offset = scratch ? 0 : p.offset;
    const fh = await open(target, scratch ? 'w' : 'r+');
    try {
      if (scratch) await fh.truncate(p.size);
      if (plan.prefill && plan.prefill.kind === 'random') {
        const key = `seed:${plan.prefill.seed}`;
        await writeSegments(fh, [{ kind: 'random', key, start: 0, length: p.size }], offset);
      }
    } finally {
      await fh.close();
    }
    const tmpDir = join(work, `files-${p.index}`);
    await mkdir(tmpDir);
    const volumes: ManifestVolume[] = [];
    const options = await builder.build({
      volumes,
      target,
      offset,
      size: p.size,
      startSector: p.offset / 512,
      fs: p.fs,
      plan,
      tmpDir,
      helperDir,
      id: `${id}:${p.index}`,
    });
    await rm(tmpDir, { recursive: true, force: true });
    if (scratch) {
      await splice(scratch, out, p.offset, p.size);
      await rm(scratch, { force: true });
    }
    manifest.partitions.push({
      index: p.index,
      offset: p.offset,
      size: p.size,
      fs: p.fs.type,
      options,
      files: fileRecords(plan.files),
      dirs: plan.dirs,
      ...(spec.table === 'none' ? {} : { type: p.type }),
      ...(volumes.length > 0 ? { volumes } : {}),
    });
  }

  if (spec.table !== 'none') {
    const script = sfdiskScript(spec, lay, (purpose) => stableUuid(id, purpose));
    await run('sfdisk', ['--no-reread', '--no-tell-kernel', '--wipe', 'never', '-q', out], {
      input: script,
    });
  }
  return manifest;
}

/** Copies `size` bytes of `src` into `dst` at `offset`, leaving all-zero chunks as holes. */
async function splice(src: string, dst: string, offset: number, size: number): Promise<void> {
  const CHUNK = 1 << 20;
  const a = await open(src, 'r');
  const b = await open(dst, 'r+');
  try {
    const buf = Buffer.alloc(CHUNK);
    for (let at = 0; at < size; at += CHUNK) {
      const n = Math.min(CHUNK, size - at);
      const { bytesRead } = await a.read(buf, 0, n, at);
      const chunk = buf.subarray(0, bytesRead);
      if (chunk.some((x) => x !== 0)) await b.write(chunk, 0, bytesRead, offset + at);
    }
  } finally {
    await a.close();
    await b.close();
  }
}

/**
 * Builds the image a spec describes, or returns it from the cache (keyed by the spec's hash).
 * Treat `image` as read-only; copy it before changing it. Parallel calls for the same spec are
 * safe: each builds under a private name and renames the result into place.
 */
export async function buildImage(
  specText: string,
  options: BuildOptions = {},
): Promise<{ image: string; manifest: Manifest }> {
  const spec = parseSpec(specText);
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  const hash = specHash(spec);
  const image = join(cacheDir, `${hash.slice(0, 32)}.img`);
  const manifestPath = `${image}.manifest.json`;
  // The manifest is renamed into place after the image, so its presence means both are done.
  try {
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
    if (existsSync(image)) return { image, manifest };
  } catch {}
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, `.build-${hash.slice(0, 12)}-`));
  try {
    const manifest = await buildTo(spec, join(work, 'disk.img'), work, join(cacheDir, 'bin'));
    await writeFile(join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(join(work, 'disk.img'), image);
    await rename(join(work, 'manifest.json'), manifestPath);
    return { image, manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Builds a spec into `out` (plus `<out>.manifest.json`), bypassing the cache. */
export async function buildImageFile(
  specText: string,
  out: string,
  options: BuildOptions = {},
): Promise<Manifest> {
  const spec = parseSpec(specText);
  const target = resolve(out);
  const work = await mkdtemp(join(dirname(target), '.mkimage-'));
  try {
    const helperDir = join(resolve(options.cacheDir ?? defaultCacheDir()), 'bin');
    const manifest = await buildTo(spec, join(work, 'disk.img'), work, helperDir);
    await writeFile(join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(join(work, 'disk.img'), target);
    await rename(join(work, 'manifest.json'), `${target}.manifest.json`);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

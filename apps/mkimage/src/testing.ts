// Test helpers, exported as `@diskube/mkimage/testing`: tool checks, partition extraction, oracles.
import { accessSync, constants } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  buildImage,
  type Manifest,
  type ManifestFile,
  type ManifestPartition,
  type ManifestVolume,
} from './build.js';
import { chunks } from './content.js';
import type { FilesystemBuilder } from './fs/builder.js';
import { assembleVolume } from './fs/lvm.js';

export { assembleVolume };

import { BUILDERS, builderOf } from './fs/registry.js';
import { run } from './run.js';
import { debianPackage } from './tools.js';

/** Where tools are looked up: PATH plus the sbin directories, as `run` does. */
const TOOL_DIRS = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];

/** True when an executable `tool` is on PATH or in an sbin directory (nothing is run). */
function onPath(tool: string): boolean {
  return TOOL_DIRS.some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function skipMessage(missing: string[], purpose: string): string {
  const packages = [...new Set(missing.map(debianPackage))];
  return `${purpose} need ${missing.join(', ')}: install ${packages.join(' ')} (apt-get install, or bash scripts/setup.sh)`;
}

/**
 * Tools missing on this machine. Tests that need them skip locally with a loud warning; under
 * CI=true the caller's "tools are installed" test fails instead. Prefer `requireTools`.
 */
export async function missingTools(tools: string[]): Promise<string[]> {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length > 0 && process.env.CI !== 'true') {
    console.warn(`\n*** SKIPPED: ${skipMessage(missing, 'mkimage tests')} ***\n`);
  }
  return missing;
}

/**
 * The one missing-tool gate of every test that runs system tools. True when every tool is
 * installed. When one is missing: under CI=true it throws (the test file fails, naming the
 * Debian packages to add to scripts/setup.sh); locally it prints a loud SKIPPED line and returns
 * false, for `describe.skipIf(!tools)`.
 *
 *   const tools = requireTools(['mkfs.xfs', 'xfs_db', 'partclone.xfs'], 'xfs image tests');
 */
export function requireTools(tools: string[], purpose = 'these tests'): boolean {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return true;
  const message = skipMessage(missing, purpose);
  if (process.env.CI === 'true') throw new Error(`${message} (required under CI=true)`);
  console.warn(`\n*** SKIPPED: ${message} ***\n`);
  return false;
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
  const b = builderOf(fs);
  if (!b?.check) throw new Error(`no checker for ${fs}`);
  return b.check(part);
}

/**
 * SHA-256 of every regular file in a filesystem image, read with the filesystem's own tools
 * (ext: `debugfs rdump`, FAT: `mcopy -s`, NTFS: `ntfscat` for each of `paths`).
 */
export async function extractedFiles(
  fs: string,
  part: string,
  paths: string[],
  dir: string,
): Promise<Map<string, string>> {
  const b = builderOf(fs);
  if (!b?.readFiles) throw new Error(`no extractor for ${fs}`);
  return b.readFiles(part, paths, dir);
}

/** True when mkimage can check `fs` and read its files back (ext, ntfs, fat; not swap, raw). */
export function canVerify(fs: string): boolean {
  const b: FilesystemBuilder | undefined = builderOf(fs);
  return b?.check !== undefined && b.readFiles !== undefined;
}

/**
 * Checks one partition of a built (or restored) disk: the filesystem's own fsck is clean and
 * the files its own tools read back are exactly the manifest's (same paths, same SHA-256; names
 * compared case-insensitively where the filesystem is). The partition is checked from a copy.
 * Returns how many files were compared: 0 for swap and raw, which hold none.
 */
export async function expectPartitionIntact(
  image: string,
  p: ManifestPartition,
  dir: string,
): Promise<number> {
  if (p.volumes) {
    let files = 0;
    for (const v of p.volumes) files += await expectVolumeIntact(image, p, v, dir);
    return files;
  }
  if (!canVerify(p.fs)) return 0;
  const part = await extract(image, p, dir);
  await expectFilesIntact(p.fs, part, p.files, dir, `${p.fs} partition ${p.index}`);
  return p.files.length;
}

/** fsck of one filesystem image, then its files (read by its own tools) equal `files`; removes `part`. */
async function expectFilesIntact(
  fs: string,
  part: string,
  files: ManifestFile[],
  dir: string,
  what: string,
): Promise<void> {
  const b = builderOf(fs)!;
  try {
    await fsck(fs, part);
    const found = await extractedFiles(
      fs,
      part,
      files.map((f) => f.path),
      dir,
    );
    const norm = (k: string) => (b.caseInsensitive ? k.toLowerCase() : k);
    const want = new Map(files.map((f) => [norm(f.path), f.sha256]));
    const got = new Map([...found].map(([k, v]) => [norm(k), v]));
    expect(new Map([...got].sort()), what).toEqual(new Map([...want].sort()));
  } finally {
    await rm(part, { force: true });
  }
}

/**
 * `expectPartitionIntact` for one logical volume of an `lvm` partition: the LV is assembled from
 * the segments mkimage laid out (not through diskube's reader), then checked the same way.
 */
export async function expectVolumeIntact(
  image: string,
  p: ManifestPartition,
  v: ManifestVolume,
  dir: string,
): Promise<number> {
  if (!canVerify(v.fs)) return 0;
  const part = join(dir, `p${p.index}-lv-${v.name}.img`);
  await assembleVolume(image, p.offset, v, part);
  await expectFilesIntact(v.fs, part, v.files, dir, `${v.fs} LV ${v.name}`);
  return v.files.length;
}

/**
 * partclone's view of a filesystem image: `partclone.<fs> -D` writes a ddrescue domain log whose
 * `+` lines are the byte ranges it would copy. Returns them as `[offset, length]` pairs, in
 * order. `fs` is partclone's name (`fat`, `extfs`, `ntfs`, `xfs` …).
 */
export async function partcloneDomain(fs: string, image: string): Promise<Array<[number, number]>> {
  const dir = await mkdtemp(join(tmpdir(), 'partclone-'));
  try {
    const log = join(dir, 'domain.log');
    await run(`partclone.${fs}`, ['-D', '-q', '-s', image, '-O', log, '-L', join(dir, 'run.log')]);
    const ranges: Array<[number, number]> = [];
    for (const m of (await readFile(log, 'utf8')).matchAll(
      /^0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\+/gim,
    )) {
      ranges.push([Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16)]);
    }
    return ranges;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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

/** Runs a system tool for a test (sbin on PATH, fixed clock, C locale); rejects on failure. */
export function runTool(
  tool: string,
  args: string[],
  options?: Parameters<typeof run>[2],
): ReturnType<typeof run> {
  return run(tool, args, options);
}

/** Every tool the build tests run: each builder's, plus sfdisk for the tables. */
export const BUILD_TOOLS: string[] = [
  ...new Set([...BUILDERS.flatMap((b) => Object.keys(b.tools)), 'sfdisk']),
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
    await expectPartitionIntact(built.image, p, work);
  }
  return built;
}

/** A segment as LVM's own `lvs --segments` reports it (bytes; `areas` are partition offsets). */
/**
 * An Ubuntu-like LVM layout for tests: /boot beside a PV whose LVs are linear (root), swap,
 * fragmented into three segments in reverse disk order (home) and striped over two areas (data).
 */
export const UBUNTU_LVM_SPEC = `
disk 128M gpt
  partition 16M ext4
    file /boot/vmlinuz 10K random
  partition rest lvm vg=ubuntu-vg
    lv root 40M ext4
      file /etc/hostname "vm"
      file /big 5M random seed=3
    lv swap 8M swap
    lv home 24M ext4 segments=3
      file /h 3M random seed=4
    lv data 16M ext4 stripes=2
      file /d 6M random seed=5
`;

export interface LvmSegment {
  lv: string;
  type: string;
  start: number;
  length: number;
  stripeSize: number;
  areas: number[];
}

const LVM_READ_CONFIG = 'devices { use_devicesfile = 0 } backup { backup = 0 archive = 0 }';

/** Runs `fn` with the bytes `[offset, +size)` of `image` on a loop device (root), detached after. */
async function onLoop<T>(
  image: string,
  offset: number,
  size: number,
  fn: (loop: string, args: string[]) => Promise<T>,
): Promise<T> {
  const { stdout } = await run('losetup', [
    '-f',
    '--show',
    '-r',
    '-o',
    String(offset),
    '--sizelimit',
    String(size),
    image,
  ]);
  const loop = stdout.trim();
  try {
    return await fn(loop, ['--config', LVM_READ_CONFIG, '--devices', loop]);
  } finally {
    await run('losetup', ['-d', loop]);
  }
}

/**
 * The oracle for an LVM partition's layout: `lvs --segments` and `pvs` on a read-only loop
 * device over the partition, as LVM itself reads the PV. Needs root (losetup).
 */
export async function lvmSegments(
  image: string,
  p: { offset: number; size: number },
): Promise<LvmSegment[]> {
  return onLoop(image, p.offset, p.size, async (loop, args) => {
    const report = (out: string, key: string) =>
      (JSON.parse(out) as { report: Array<Record<string, Array<Record<string, string>>>> })
        .report[0]![key]!;
    const json = ['--reportformat', 'json', '--units', 'b', '--nosuffix'];
    const pv = report(
      (await run('pvs', [...args, ...json, '-o', 'pe_start,vg_extent_size', loop])).stdout,
      'pv',
    )[0]!;
    const peStart = Number(pv.pe_start);
    const extent = Number(pv.vg_extent_size);
    const segs = report(
      (
        await run('lvs', [
          ...args,
          ...json,
          '-a',
          '--segments',
          '-o',
          'lv_name,segtype,seg_start,seg_size,stripe_size,seg_pe_ranges',
        ])
      ).stdout,
      'seg',
    );
    return segs.map((s) => ({
      lv: s.lv_name!.replace(/^\[(.*)\]$/, '$1'),
      type: s.segtype!,
      start: Number(s.seg_start),
      length: Number(s.seg_size),
      stripeSize: Number(s.stripe_size),
      areas: s
        .seg_pe_ranges!.split(' ')
        .filter((r) => r !== '')
        .map((r) => peStart + Number(r.slice(r.lastIndexOf(':') + 1).split('-')[0]) * extent),
    }));
  });
}

/** `vgcfgbackup` of the VG on an LVM partition, with its timestamp and host lines dropped. */
export async function vgcfgBackup(
  image: string,
  p: { offset: number; size: number },
  dir: string,
): Promise<string> {
  return onLoop(image, p.offset, p.size, async (_loop, args) => {
    const file = join(dir, `vgcfgbackup-${p.offset}.txt`);
    await run('vgcfgbackup', [...args, '-f', file]);
    const text = await readFile(file, 'utf8');
    await rm(file, { force: true });
    return text
      .split('\n')
      .filter(
        (line) =>
          !/^(# Generated by|description =|creation_host =|creation_time =)/.test(line.trim()),
      )
      .map((line) => line.replace(/device = "[^"]*"/, 'device = ""'))
      .join('\n');
  });
}

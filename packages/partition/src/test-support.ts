// Test helpers: build partitioned disks with the real tools (sfdisk), no mounting needed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  crc32,
  DirtyFilesystemError,
  type DiskubeError,
  type FilesystemDriver,
  IoError,
  readBytes,
  UnsupportedError,
} from '@diskube/core';

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Skips locally with a loud reason when a tool is missing; under CI=true a missing tool fails. */
export function requireTool(name: string, pkg: string): boolean {
  if (hasTool(name)) return true;
  const message = `${name} not found: install the Debian package ${pkg}`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

/** A disk of `size` bytes partitioned by `sfdisk` with the given script; returns its bytes. */
export function sfdiskImage(size: number, script: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'diskube-part-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, new Uint8Array(0));
    execFileSync('truncate', ['-s', String(size), path]);
    execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', path], { input: script });
    return new Uint8Array(readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A disk of `size` bytes partitioned by `sgdisk` with the given arguments; returns its bytes. */
export function sgdiskImage(size: number, args: string[]): Uint8Array {
  return withScratchFile(size, (path) => {
    execFileSync('sgdisk', [...args, path], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
}

/** A bare filesystem made by `tool args… PATH` on a file of `size` bytes; returns its bytes. */
export function mkfsImage(size: number, tool: string, args: string[]): Uint8Array {
  return withScratchFile(size, (path) => {
    execFileSync(tool, [...args, path], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
}

function withScratchFile(size: number, make: (path: string) => void): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'diskube-part-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, new Uint8Array(0));
    execFileSync('truncate', ['-s', String(size), path]);
    make(path);
    return new Uint8Array(readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What a util-linux tool says about `bytes` written to a file: `run(path)` returns its stdout
 * and stderr. Used as the oracle: `partx --show` reads tables with libblkid, whose EBR walk
 * follows the kernel's `parse_extended`; `sfdisk --dump` and `fdisk -l` use libfdisk.
 */
export function toolOutput(bytes: Uint8Array, command: string, args: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'diskube-part-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, bytes);
    const run = spawnSync(command, [...args, path], { encoding: 'utf8' });
    return `${run.stdout}${run.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `[number, startSector, sectors]` of each partition `partx --show` lists (kernel numbering). */
export function partxPartitions(bytes: Uint8Array): Array<[number, number, number]> {
  const out = toolOutput(bytes, 'partx', ['--show', '--noheadings', '-o', 'NR,START,SECTORS']);
  return out
    .trim()
    .split('\n')
    .filter((line) => /^\s*\d/.test(line))
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number, number]);
}

/** Writes one 16-byte MBR/EBR entry (status 0, CHS left zero) into the sector at `sector`. */
export function putMbrEntry(
  disk: Uint8Array,
  sector: number,
  slot: number,
  type: number,
  lbaStart: number,
  sectorCount: number,
): void {
  const at = sector * 512 + 0x1be + 16 * slot;
  const view = new DataView(disk.buffer, disk.byteOffset, disk.byteLength);
  disk.fill(0, at, at + 16);
  view.setUint8(at + 4, type);
  view.setUint32(at + 8, lbaStart, true);
  view.setUint32(at + 12, sectorCount, true);
  disk[sector * 512 + 510] = 0x55;
  disk[sector * 512 + 511] = 0xaa;
}

/**
 * Rewrites GPT entry `index` (1-based) in both the primary and the backup array of a 512-byte
 * sector disk, then re-signs both (`resignGpt`), as a forger would.
 */
export function patchGptEntry(
  disk: Uint8Array,
  index: number,
  entry: { typeGuidBytes: Uint8Array; firstLba: number; lastLba: number },
): void {
  const view = new DataView(disk.buffer, disk.byteOffset, disk.byteLength);
  for (const headerAt of [512, disk.length - 512]) {
    const arrayAt = Number(view.getBigUint64(headerAt + 0x48, true)) * 512;
    const at = arrayAt + (index - 1) * view.getUint32(headerAt + 0x54, true);
    disk.fill(0, at, at + 128);
    disk.set(entry.typeGuidBytes, at);
    disk[at + 0x10] = index; // a unique GUID, only needs to be non-zero
    view.setBigUint64(at + 0x20, BigInt(entry.firstLba), true);
    view.setBigUint64(at + 0x28, BigInt(entry.lastLba), true);
  }
  resignGpt(disk);
}

/** Recomputes the entry array CRC32 and then the header CRC32 of both GPT copies. */
export function resignGpt(disk: Uint8Array): void {
  const view = new DataView(disk.buffer, disk.byteOffset, disk.byteLength);
  for (const headerAt of [512, disk.length - 512]) {
    const arrayAt = Number(view.getBigUint64(headerAt + 0x48, true)) * 512;
    const length = view.getUint32(headerAt + 0x50, true) * view.getUint32(headerAt + 0x54, true);
    view.setUint32(headerAt + 0x58, crc32(disk.subarray(arrayAt, arrayAt + length)), true);
    const headerSize = view.getUint32(headerAt + 0x0c, true);
    view.setUint32(headerAt + 0x10, 0, true);
    view.setUint32(headerAt + 0x10, crc32(disk.subarray(headerAt, headerAt + headerSize)), true);
  }
}

/** EFI_GUID bytes (first three fields little-endian) of a GUID in canonical text. */
export function guidBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.from(text.replace(/-/g, ''), 'hex'));
  for (const [start, end] of [
    [0, 4],
    [4, 6],
    [6, 8],
  ] as const)
    bytes.subarray(start, end).reverse();
  return bytes;
}

/** The rejection of `promise`, which must reject. */
export async function errorOf(promise: Promise<unknown>): Promise<DiskubeError> {
  try {
    await promise;
  } catch (error) {
    return error as DiskubeError;
  }
  throw new Error('expected a rejection');
}

/**
 * A toy filesystem for testing the composition: "TOYFS" at byte 0, a status byte at 5
 * (0 ok, 1 corrupt, 2 unsupported), 1 KiB blocks, and block i used when byte 16+i is non-zero.
 */
export const toyDriver: FilesystemDriver = {
  name: 'toy',
  async probe(source: BlockSource) {
    if (source.size < 4096) return null;
    const head = await readBytes(source, 0, 5);
    return new TextDecoder().decode(head) === 'TOYFS'
      ? { filesystem: 'toy', blockSize: 1024 }
      : null;
  },
  async usedBlocks(source, options) {
    const head = await readBytes(source, 0, 4096);
    if (head[5] === 1 && !options?.assumeUsedOnDoubt)
      throw new CorruptError('toy corrupt', { structure: 'toy header', offset: 5 });
    if (head[5] === 3) throw new DirtyFilesystemError('toy dirty', { offset: 5 });
    if (head[5] === 4) throw new IoError('toy read failed', { offset: 5 });
    if (head[5] === 5) throw new CorruptError('toy bitmap lies', { offset: 5 });
    if (head[5] === 2)
      throw new UnsupportedError('toy feature', { structure: 'toy header', offset: 5 });
    const blockCount = Math.floor(source.size / 1024);
    const used = new Bitmap(blockCount);
    for (let i = 0; i < Math.min(blockCount, 4096 - 16); i++) if (head[16 + i]) used.set(i);
    used.set(0);
    return {
      filesystem: 'toy',
      blockSize: 1024,
      blockCount,
      used,
      tail: {
        offset: blockCount * 1024,
        length: source.size - blockCount * 1024,
        used: false,
        reason: 'none',
      },
      warnings: [],
      facts: {},
    };
  },
};

export function toyFs(disk: Uint8Array, offset: number, usedBlocks: number[], status = 0) {
  disk.set(new TextEncoder().encode('TOYFS'), offset);
  disk[offset + 5] = status;
  for (const b of usedBlocks) disk[offset + 16 + b] = 1;
}

export function swapHeader(disk: Uint8Array, offset: number, signature = 'SWAPSPACE2') {
  disk.set(new TextEncoder().encode(signature), offset + 4096 - 10);
}

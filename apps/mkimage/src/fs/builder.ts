import { createHash } from 'node:crypto';
import { open, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { FilesystemSpec } from '../ast.js';
import { type Segment, writeSegments } from '../content.js';
import type { Plan } from '../model.js';
import { FIXED_TIME } from '../tools.js';

export interface BuildContext {
  /** File the filesystem is written into (the disk image, or a scratch file of `size`). */
  target: string;
  /** Byte offset of the filesystem inside `target`. */
  offset: number;
  size: number;
  /** Start of the partition on the disk in 512-byte sectors (hidden sectors for NTFS/FAT). */
  startSector: number;
  fs: FilesystemSpec;
  plan: Plan;
  /** Private scratch directory for host-side copies of file contents. */
  tmpDir: string;
  /** Directory for compiled helpers (the NTFS populate helper). */
  helperDir: string;
  /** Stable identity (spec hash + partition index): seeds UUIDs and serial numbers. */
  id: string;
}

export interface FilesystemBuilder {
  /**
   * True when the tools can work at an offset inside the disk image (mke2fs -E offset, debugfs
   * `?offset=`, mkfs.vfat --offset, mtools `@@offset`). Otherwise the filesystem is built in a
   * scratch file and spliced into the disk.
   */
  inPlace: boolean;
  /** Builds the filesystem and its content; returns the options to record in the manifest. */
  build(ctx: BuildContext): Promise<Record<string, string>>;
}

/** A UUID derived from the context id, so the same spec always gets the same UUIDs. */
export function stableUuid(id: string, purpose: string): string {
  const h = createHash('sha256').update(`${id}:${purpose}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

let hostCounter = 0;

/** Writes file content to a new host file (mtime fixed) and returns its path. */
export async function hostFile(
  tmpDir: string,
  content: Segment[],
  name = `c${++hostCounter}`,
): Promise<string> {
  const p = join(tmpDir, name);
  const fh = await open(p, 'w');
  try {
    await writeSegments(fh, content, 0, false);
  } finally {
    await fh.close();
  }
  await utimes(p, FIXED_TIME, FIXED_TIME);
  return p;
}

import { createHash } from 'node:crypto';
import { open, readdir, readFile, utimes } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { FilesystemSpec } from '../ast.js';
import type { ManifestVolume } from '../build.js';
import { type Segment, writeSegments } from '../content.js';
import type { Plan } from '../model.js';
import type { OptionSpec } from '../options.js';
import { FIXED_TIME } from '../run.js';

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
  /** A volume manager's builder (`content: 'volumes'`) records each volume it wrote here. */
  volumes: ManifestVolume[];
}

/**
 * Everything mkimage knows about one filesystem: its DSL names and options, how to build and
 * populate it, its partition type, and how tests check it and read its files back. Adding a
 * filesystem is one file under `fs/` exporting one of these, plus its line in `fs/registry.ts`.
 */
export interface FilesystemBuilder {
  /** DSL type names (`filesystem ext4`, `partition 1G ext4`); the first is the main one. */
  names: readonly string[];
  /** `key=value` options the type accepts, each with its validator (null = bare flag). */
  options: Record<string, OptionSpec>;
  /**
   * Content lines it accepts: every line (`files`), only `prefill`, or nothing at all (`none`,
   * for formats that hold no files, like swap).
   */
  content: 'files' | 'prefill' | 'none' | 'volumes';
  /** Names differ only in case are the same file (FAT): `/A` and `/a` collide. */
  caseInsensitive?: boolean;
  /** Default partition type when the spec gives no `type=`. */
  partitionType: {
    /** MBR type byte in hex (`83`), or chosen from the options (FAT12/16/32 differ). */
    mbr: string | ((options: Record<string, string>) => string);
    /** GPT type GUID, or an alias (`linux swap msdata efi bios lvm`). */
    gpt: string;
  };
  /** Every system tool `build`, `check` and `readFiles` run, with the Debian package that ships it. */
  tools: Record<string, string>;
  /**
   * True when the tools can work at an offset inside the disk image (mke2fs -E offset, debugfs
   * `?offset=`, mkfs.vfat --offset, mtools `@@offset`). Otherwise the filesystem is built in a
   * scratch file and spliced into the disk.
   */
  inPlace: boolean;
  /** Builds the filesystem and its content; returns the options to record in the manifest. */
  build(ctx: BuildContext): Promise<Record<string, string>>;
  /**
   * Runs the filesystem's own checker read-only on a filesystem image (one partition);
   * resolves to its output, rejects when it finds errors.
   */
  check?(part: string): Promise<string>;
  /**
   * SHA-256 of every regular file, read back with the filesystem's own tools. `paths` (the
   * manifest's) is for tools that cannot copy a whole tree out; `dir` is scratch space.
   */
  readFiles?(part: string, paths: string[], dir: string): Promise<Map<string, string>>;
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

/** SHA-256 of every regular file below `tree`, keyed by its path from `tree` (`/a/b`). */
export async function hashTree(tree: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(tree, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const host = join(entry.parentPath, entry.name);
    out.set(
      `/${relative(tree, host)}`,
      createHash('sha256')
        .update(await readFile(host))
        .digest('hex'),
    );
  }
  return out;
}

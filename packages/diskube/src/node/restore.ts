import { dirname, extname, isAbsolute, relative, resolve } from 'node:path';
import { InvalidArgumentError } from '@diskube/core';
import type { BackupReader, Progress } from '@diskube/format';
import {
  containerTarget,
  discoverChain,
  type RestoreResult,
  type RestoreStrategy,
  type RestoreTarget,
  restoreImage,
} from '@diskube/restore';
import type { DiskImage } from '../image.js';
import { openImageFile } from './open-file.js';

/** What a restore writes: a raw image (or device), or a qcow2 v3 or dynamic VDI container. */
export type RestoreFormat = 'raw' | 'qcow2' | 'vdi';

export interface RestoreOptions {
  /** The backup to restore; its ancestors are found beside it by id. */
  backup: string;
  /** The image file or block device to write, or any `RestoreTarget` (then `format` is ignored). */
  out: string | RestoreTarget;
  /** Default: from the extension of `out` (`.qcow2`, `.vdi`), else raw. */
  format?: RestoreFormat;
  /** `reverse` (default): newest backup first, every block written once. `patch`: oldest first. */
  strategy?: RestoreStrategy;
  /** Write zeros over unused blocks instead of leaving holes (needed on devices). */
  zeroUnused?: boolean;
  /** qcow2 only: deflate-compress clusters. */
  compressed?: boolean;
  /** Replace an existing file at `out`. Default false. */
  overwrite?: boolean;
  /**
   * Write a qcow2 overlay on this image (a path: the template the backed-up disk was an overlay
   * of, say) instead of a whole disk. The overlay names it relative to its own directory
   * (absolute when given absolute) with its format, and holds only the clusters where a used
   * block differs from it; unused blocks read as the backing image's bytes, not as zeros.
   * qcow2 output and the reverse strategy only.
   */
  backing?: string;
  /** With `backing`: where the backing image's own parents may be (see `openImageFile`). */
  allowBackingDir?: string | readonly string[];
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

export interface RestoreSummary extends Omit<RestoreResult, 'writeCounts'> {
  format: RestoreFormat;
  /** The backups read, oldest first. */
  chain: string[];
}

/** The format a restore to `path` writes when none is given: by extension, else raw. */
export function restoreFormatOf(path: string): RestoreFormat {
  const ext = extname(path).toLowerCase();
  return ext === '.qcow2' ? 'qcow2' : ext === '.vdi' ? 'vdi' : 'raw';
}

/** Restores the disk a backup (and the chain before it) describes. */
export async function restore(options: RestoreOptions): Promise<RestoreSummary> {
  const format =
    options.format ?? (typeof options.out === 'string' ? restoreFormatOf(options.out) : 'raw');
  if (format !== 'raw' && format !== 'qcow2' && format !== 'vdi') {
    throw new InvalidArgumentError(`restore format must be raw, qcow2 or vdi, not "${format}"`, {
      reason: 'usage',
    });
  }
  const strategy = options.strategy ?? 'reverse';
  if (strategy !== 'reverse' && strategy !== 'patch') {
    throw new InvalidArgumentError(`strategy must be reverse or patch, not "${strategy}"`, {
      reason: 'usage',
    });
  }
  if (options.compressed && format !== 'qcow2') {
    throw new InvalidArgumentError(`compressed output needs qcow2, not ${format}`, {
      reason: 'usage',
    });
  }
  if (
    options.backing !== undefined &&
    (format !== 'qcow2' || typeof options.out !== 'string' || options.zeroUnused)
  ) {
    throw new InvalidArgumentError(
      'a restore over a backing image writes a qcow2 file, and leaves unused blocks to it (no zeroUnused)',
      { reason: 'usage' },
    );
  }
  const chain: BackupReader[] = await discoverChain(options.backup);
  let base: DiskImage | undefined;
  try {
    if (options.backing !== undefined) {
      base = await openImageFile(
        options.backing,
        options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {},
      );
    }
    // A container is built by its own target; raw goes to restoreImage's file/device target.
    const target: string | RestoreTarget =
      typeof options.out !== 'string' || format === 'raw'
        ? options.out
        : await containerTarget(options.out, chain.at(-1)!.header.sourceSize, {
            format,
            overwrite: options.overwrite ?? false,
            ...(options.compressed ? { compress: 'deflate' as const } : {}),
            ...(base
              ? {
                  backing: {
                    file: backingName(options.out, options.backing!),
                    format: base.container.format,
                    disk: base.disk,
                  },
                }
              : {}),
          });
    const { writeCounts: _, ...result } = await restoreImage({
      chain,
      target,
      strategy,
      zeroUnused: options.zeroUnused ?? false,
      overwrite: options.overwrite ?? false,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { ...result, format, chain: chain.map((reader) => reader.path) };
  } finally {
    for (const reader of chain) await reader.close();
    await base?.close();
  }
}

/** How an overlay at `out` names `backing`: as given when absolute, else relative to `out`'s directory. */
function backingName(out: string, backing: string): string {
  return isAbsolute(backing) ? backing : relative(dirname(resolve(out)), resolve(backing));
}

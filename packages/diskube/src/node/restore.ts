import { extname } from 'node:path';
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
  const chain: BackupReader[] = await discoverChain(options.backup);
  try {
    // A container is built by its own target; raw goes to restoreImage's file/device target.
    const target: string | RestoreTarget =
      typeof options.out !== 'string' || format === 'raw'
        ? options.out
        : await containerTarget(options.out, chain.at(-1)!.header.sourceSize, {
            format,
            overwrite: options.overwrite ?? false,
            ...(options.compressed ? { compress: 'deflate' as const } : {}),
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
  }
}

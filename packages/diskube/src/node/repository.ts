import { basename } from 'node:path';
import type { FilesystemDriver, Warning } from '@diskube/core';
import type { DiskMap } from '@diskube/partition';
import {
  type BackupToRepositoryResult,
  backupToRepository,
  initRepository,
  openRepository,
  type Repository,
  type RepositoryProgress,
  type RestoreSnapshotResult,
  restoreSnapshot,
} from '@diskube/repository';
import { openBackend, processOwner } from '@diskube/repository/node';
import { containerTarget, fileTarget } from '@diskube/restore';
import type { DiskImage } from '../image.js';
import { mapImage, usedBytes } from '../map.js';
import { openImageFile } from './open-file.js';
import { type RestoreFormat, restoreFormatOf } from './restore.js';

export interface RepositoryLocationOptions {
  /** Endpoint URL of a non-AWS S3-compatible store (for `s3://` locations). */
  s3Endpoint?: string;
  signal?: AbortSignal;
}

/** Open the repository at a path or `s3://bucket/prefix`, taking locks as this process. */
export async function openRepositoryAt(
  location: string,
  options: RepositoryLocationOptions = {},
): Promise<Repository> {
  const backend = await openBackend(
    location,
    options.s3Endpoint ? { s3Endpoint: options.s3Endpoint } : {},
  );
  return openRepository(backend, {
    owner: processOwner(),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Create a repository at a path or `s3://bucket/prefix`. */
export async function initRepositoryAt(
  location: string,
  options: RepositoryLocationOptions & { chunkSize?: number } = {},
): Promise<Repository> {
  const backend = await openBackend(
    location,
    options.s3Endpoint ? { s3Endpoint: options.s3Endpoint } : {},
  );
  return initRepository(backend, {
    owner: processOwner(),
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export interface RepositoryBackupOptions extends RepositoryLocationOptions {
  /** The image: a path (any container) or an image already opened. */
  image: string | DiskImage;
  /** The repository: a location or one already open. */
  repo: string | Repository;
  /** The VM (group) name. */
  name: string;
  /** Byte ranges that may have changed since the VM's latest snapshot. */
  changedRanges?: ReadonlyArray<readonly [number, number]>;
  /** Snapshot id to back up against (default the VM's latest; `none` for none). */
  parent?: string;
  fullCopyOnDoubt?: boolean;
  crossCheck?: boolean;
  drivers?: readonly FilesystemDriver[];
  /** With `image` a path: where an overlay's parents may also be. */
  allowBackingDir?: string | readonly string[];
  onWarning?: (warning: Warning) => void;
  onProgress?: (progress: RepositoryProgress) => void;
}

export interface RepositoryBackupResult extends BackupToRepositoryResult {
  imageBytes: number;
  usedBytes: number;
  warnings: Warning[];
  map: DiskMap;
}

/**
 * Back up an image into a repository: its used map (container → table → filesystems) decides
 * which blocks are kept; everything else is zero inside the chunks (see `@diskube/repository`).
 */
export async function backupImageToRepository(
  options: RepositoryBackupOptions,
): Promise<RepositoryBackupResult> {
  const image =
    typeof options.image === 'string'
      ? await openImageFile(
          options.image,
          options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {},
        )
      : options.image;
  try {
    const repo =
      typeof options.repo === 'string'
        ? await openRepositoryAt(options.repo, options)
        : options.repo;
    const map = await mapImage(image, {
      ...(options.drivers ? { drivers: options.drivers } : {}),
      fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
      crossCheck: options.crossCheck ?? false,
      dropUnallocated: true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for (const warning of map.warnings) options.onWarning?.(warning);
    const result = await backupToRepository(repo, {
      source: image.disk,
      used: map.used,
      blockSize: map.blockSize,
      tailUsed: map.tail.used,
      name: options.name,
      facts: {
        image: typeof options.image === 'string' ? basename(options.image) : 'image',
        container: image.container.format,
        warnings: map.warnings.map((w) => w.message),
      },
      summary: {
        table: map.table?.scheme ?? null,
        parts: map.parts.map((p) => ({
          offset: p.offset,
          size: p.size,
          content: p.content ?? null,
          usedBytes: p.usedBytes,
        })),
      },
      ...(options.parent ? { parent: options.parent } : {}),
      ...(options.changedRanges ? { changedRanges: options.changedRanges } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return {
      ...result,
      imageBytes: map.size,
      usedBytes: usedBytes(map),
      warnings: map.warnings,
      map,
    };
  } finally {
    if (typeof options.image === 'string') await image.close();
  }
}

export interface RepositoryRestoreOptions extends RepositoryLocationOptions {
  repo: string | Repository;
  /** `vm@latest`, a snapshot id, or a unique prefix of one. */
  snapshot: string;
  /** The image file to write: raw, or qcow2/VDI by extension or `format`. */
  out: string;
  format?: RestoreFormat;
  overwrite?: boolean;
  onProgress?: (progress: RepositoryProgress) => void;
}

/**
 * Restore a snapshot to a raw, qcow2 or VDI image file: chunks fetched in parallel and checked,
 * holes for unused space; the file appears only when complete (a temporary name until then).
 */
export async function restoreFromRepository(
  options: RepositoryRestoreOptions,
): Promise<RestoreSnapshotResult & { format: RestoreFormat; path: string }> {
  const repo =
    typeof options.repo === 'string' ? await openRepositoryAt(options.repo, options) : options.repo;
  const format = options.format ?? restoreFormatOf(options.out);
  const overwrite = options.overwrite ?? false;
  const result = await restoreSnapshot(repo, {
    snapshot: options.snapshot,
    target: (snapshot) =>
      format === 'raw'
        ? fileTarget(options.out, snapshot.diskSize, { overwrite })
        : containerTarget(options.out, snapshot.diskSize, { format, overwrite }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return { ...result, format, path: options.out };
}

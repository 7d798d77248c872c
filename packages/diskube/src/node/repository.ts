import { basename } from 'node:path';
import { type FilesystemDriver, InvalidArgumentError, type Warning } from '@diskube/core';
import type { DiskMap } from '@diskube/partition';
import {
  type BackupToRepositoryResult,
  backupToRepository,
  initRepository,
  listSnapshots,
  openRepository,
  type Repository,
  type RepositoryProgress,
  type RestoreSnapshotResult,
  resolveSnapshot,
  restoreSnapshot,
  type SnapshotInfo,
} from '@diskube/repository';
import { cacheUnder, openBackend, processOwner } from '@diskube/repository/node';
import { containerTarget, fileTarget } from '@diskube/restore';
import type { DiskImage } from '../image.js';
import { mapImage, usedBytes } from '../map.js';
import { openImageFile } from './open-file.js';
import { type LayerFact, layerFacts, layersMismatch, planOverlayOnly } from './overlay.js';
import { type RestoreFormat, restoreFormatOf } from './restore.js';

export interface RepositoryLocationOptions {
  /** Endpoint URL of a non-AWS S3-compatible store (for `s3://` locations). */
  s3Endpoint?: string;
  /**
   * Keep copies of the repository's snapshot manifests, and (on S3) the block digest tables of
   * the chunks this host stored, under this directory (one folder per repository), so that listing
   * snapshots and finding a VM's parent fetch only new manifests, and a backup makes the patches
   * of chunks that changed before without fetching them (`defaultCacheDir()` is the per-user
   * one). Default: no cache.
   */
  cacheDir?: string;
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
    ...(options.cacheDir ? { cache: cacheUnder(options.cacheDir) } : {}),
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
  /** Snapshot to back up against: `vm@latest`, an id or a prefix (default the VM's latest; `none` for none). */
  parent?: string;
  /**
   * The image is an overlay (a qcow2 over its template, say): back it up against a snapshot of
   * its backing chain, reading only what the overlay itself holds (see `BackupOptions`). That
   * snapshot is `parent` when given, else the newest snapshot in the repository made of exactly
   * these backing files (snapshots record their chain's files). Without one, a warning
   * `overlay-untrusted` says why and the backup compares every used block with the VM's latest
   * snapshot by digest, as without this option.
   */
  overlayOnly?: boolean;
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
    const layers = await layerFacts(image);
    let parent = options.parent;
    let changedRanges = options.changedRanges;
    const warnings = [...map.warnings];
    if (options.overlayOnly) {
      if (changedRanges) {
        throw new InvalidArgumentError('overlay-only and changed ranges are alternatives', {
          reason: 'usage',
        });
      }
      const base =
        parent !== undefined && parent !== 'none'
          ? await resolveSnapshot(repo, parent, options.signal)
          : await snapshotOf(repo, layers?.slice(1), options.signal);
      const plan = await planOverlayOnly(
        image,
        layers,
        base?.facts.layers,
        base ? `snapshot ${base.id.slice(0, 12)}` : 'no snapshot in the repository',
      );
      if (plan.warning) warnings.push(plan.warning);
      if (base && plan.changedRanges) {
        parent = base.id;
        changedRanges = plan.changedRanges.map((r) => [r.offset, r.length] as const);
      }
    } else if (parent !== undefined && parent !== 'none') {
      parent = (await resolveSnapshot(repo, parent, options.signal)).id;
    }
    for (const warning of warnings) options.onWarning?.(warning);
    const result = await backupToRepository(repo, {
      source: image.disk,
      used: map.used,
      blockSize: map.blockSize,
      tailUsed: map.tail.used,
      name: options.name,
      facts: {
        image: typeof options.image === 'string' ? basename(options.image) : 'image',
        container: image.container.format,
        warnings: warnings.map((w) => w.message),
        ...(layers ? { layers } : {}),
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
      ...(parent ? { parent } : {}),
      ...(changedRanges ? { changedRanges } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return {
      ...result,
      imageBytes: map.size,
      usedBytes: usedBytes(map),
      warnings,
      map,
    };
  } finally {
    if (typeof options.image === 'string') await image.close();
  }
}

/** The newest snapshot made of exactly the files `layers` describes, if any. */
async function snapshotOf(
  repo: Repository,
  layers: readonly LayerFact[] | undefined,
  signal: AbortSignal | undefined,
): Promise<SnapshotInfo | undefined> {
  if (!layers) return undefined;
  const all = await listSnapshots(repo, signal ? { signal } : {});
  return all.reverse().find((s) => layersMismatch(layers, s.facts.layers, s.id) === undefined);
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

import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { type FilesystemDriver, InvalidArgumentError, type Warning } from '@diskube/core';
import {
  type BackupReader,
  type ByteRange,
  type CompressOptions,
  DEFAULT_ZSTD_LEVEL,
  type Progress,
  STATE_DIGESTS_MAX_AGE_MS,
  StateDigestCache,
  type StateDigestWriter,
  type WriteResult,
  writeIncremental,
  writeSnapshot,
} from '@diskube/format';
import type { DiskMap } from '@diskube/partition';
import { sweepOnceADay } from '@diskube/repository';
import { defaultCacheDir, directoryCache } from '@diskube/repository/node';
import { discoverChain } from '@diskube/restore';
import type { DiskImage } from '../image.js';
import { mapImage, usedBytes } from '../map.js';
import { planDirtyBitmap } from './dirty-bitmap.js';
import { openImageFile } from './open-file.js';
import { layerFacts, planOverlayOnly } from './overlay.js';

export interface BackupOptions {
  /** The image: a path (any container, detected by magic) or an image already opened. */
  image: string | DiskImage;
  /** With `image` a path: where an overlay's parents may also be (see `openImageFile`). */
  allowBackingDir?: string | readonly string[];
  /** The backup file to write (atomically: a temporary name, fsync, rename). */
  out: string;
  /** A backup of the same disk to make an incremental against; its ancestors are found beside it. */
  base?: string;
  /** Default zstd at level 3. */
  compress?: CompressOptions;
  /**
   * With `base`: the byte ranges that may have changed since it (a hypervisor's dirty list).
   * Only these ranges and newly used blocks are read; everything else is taken as unchanged.
   */
  changedRanges?: readonly ByteRange[];
  /**
   * The name of a qcow2 persistent dirty bitmap of `image` (a path to a qcow2 file) that QEMU
   * keeps enabled: changed-block tracking. The backup records the bitmap (name, granularity,
   * dirty count) in its facts. An incremental whose `base` recorded the same bitmap reads only
   * the ranges it marks dirty, plus newly used blocks; the filesystems are still mapped. When the
   * base did not record it, or it was re-created or cleared since (other granularity, fewer
   * dirty granules), the bitmap is not trusted: a warning `dirty-bitmap-untrusted` says why and
   * every used block is compared by digest, as without it. A bitmap QEMU left in use is DIRTY
   * (reason `bitmap-untrusted`). Not with `changedRanges`.
   */
  dirtyBitmap?: string;
  /**
   * With `base`, a backup of this overlay's backing chain (an OpenStack or libvirt instance's
   * qcow2 over its template, say): read only what the overlay itself holds (its allocated and
   * zero clusters), plus newly used blocks; the rest is the base's. Trusted only when `base`
   * was made of exactly the backing files there are now (every backup records its chain's
   * files: names, sizes, modification times, format ids); otherwise a warning
   * `overlay-untrusted` says why and every used block is compared by digest. Not with
   * `changedRanges` or `dirtyBitmap`.
   */
  overlayOnly?: boolean;
  /** Keep a filesystem whole, with a warning, when its metadata cannot be trusted (see `MapOptions`). */
  fullCopyOnDoubt?: boolean;
  /** Walk every filesystem's own references and keep referenced blocks its map calls free. */
  crossCheck?: boolean;
  /** Filesystem drivers; default `defaultDrivers`. */
  drivers?: readonly FilesystemDriver[];
  /** Replace an existing file at `out`. Default false. */
  overwrite?: boolean;
  /** The name recorded in the backup; default the image file's base name. */
  sourceName?: string;
  /** Called once per warning as soon as the used map is known, before any data is read. */
  onWarning?: (warning: Warning) => void;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
  /** zstd worker threads; default one per core for large backups (see `@diskube/format`). */
  threads?: number;
  /**
   * Keep a digest table in the backup file (16 bytes per stored block, 0.4 % of 4 KiB blocks):
   * then an incremental made from any copy of the chain, on any machine, skips reading old data.
   * Default false: the file is smaller, and the digests of the new state go to `cache`.
   */
  digestTable?: boolean;
  /**
   * Hold a block identical to one the file already stores as a reference to it (format 2.2).
   * Default true; false writes files that readers of format 2.1 read.
   */
  repeats?: boolean;
  /**
   * Where to keep the digests of each backup's state (`StateDigestCache`, SPEC.md §13), so the
   * next incremental compares digests instead of reading the parent's blocks back: a directory,
   * default `$DISKUBE_CACHE_DIR`, else `$XDG_CACHE_HOME/diskube`, else `~/.cache/diskube`. false
   * keeps none (an incremental over a chain without digest tables then reads the parent's state
   * from its frames). A cache that cannot be written costs a warning `state-cache`, not the backup.
   */
  cache?: string | false;
}

export interface BackupResult extends WriteResult {
  /** Size of the virtual disk. */
  imageBytes: number;
  /** Bytes the used map keeps. */
  usedBytes: number;
  /** The backups the incremental depends on, oldest first (empty for a snapshot). */
  chain: string[];
  warnings: Warning[];
  /** The used map the backup was made from. */
  map: DiskMap;
  /**
   * Where the parent state's digests came from (incrementals): `cache` (a state digest file),
   * `table` (the chain's digest tables) or `frames` (the parent's blocks read back,
   * `parentBytesRead` bytes); null for a snapshot.
   */
  parentDigestsFrom: 'cache' | 'table' | 'frames' | null;
}

/**
 * Backs up an image: a snapshot of its used blocks, or with `base` an incremental holding the
 * blocks changed since that backup and the blocks newly unused. Blocks the container holds no
 * data for are not read.
 */
export async function backup(options: BackupOptions): Promise<BackupResult> {
  if (options.changedRanges && !options.base) {
    throw new InvalidArgumentError('changed ranges need a base backup', { reason: 'usage' });
  }
  if (options.overlayOnly) {
    if (!options.base) {
      throw new InvalidArgumentError('--overlay-only needs a base backup of the backing file', {
        reason: 'usage',
      });
    }
    if (options.changedRanges || options.dirtyBitmap !== undefined) {
      throw new InvalidArgumentError(
        'overlay-only, a dirty bitmap and changed ranges are alternatives',
        { reason: 'usage' },
      );
    }
  }
  if (options.dirtyBitmap !== undefined) {
    if (options.changedRanges) {
      throw new InvalidArgumentError('a dirty bitmap and changed ranges are alternatives', {
        reason: 'usage',
      });
    }
    if (typeof options.image !== 'string') {
      throw new InvalidArgumentError('a dirty bitmap needs the image as a path to its qcow2 file', {
        reason: 'usage',
      });
    }
  }
  const image =
    typeof options.image === 'string'
      ? await openImageFile(
          options.image,
          options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {},
        )
      : options.image;
  // The parent and its ancestors: an incremental's digest table covers only its own stored
  // blocks, so the parent state's digests come from the whole chain (or from the cache).
  let chain: BackupReader[] = [];
  const cache =
    options.cache === false ? null : new StateDigestCache(options.cache ?? defaultCacheDir());
  let parentDigests: Awaited<ReturnType<StateDigestCache['open']>> = null;
  let stateWriter: StateDigestWriter | null = null;
  const cacheWarnings: Warning[] = [];
  const cacheTrouble = (what: string, error: unknown) => {
    const warning = {
      code: 'state-cache',
      message: `${what} the state digest cache in ${cache!.dir}: ${(error as Error).message}; the next incremental may read this backup back instead`,
    };
    cacheWarnings.push(warning);
    options.onWarning?.(warning);
  };
  try {
    if (options.base) chain = await discoverChain(options.base);
    const bitmap =
      options.dirtyBitmap !== undefined
        ? await planDirtyBitmap(options.image as string, options.dirtyBitmap, chain.at(-1))
        : undefined;
    const layers = await layerFacts(image);
    const overlay = options.overlayOnly
      ? await planOverlayOnly(
          image,
          layers,
          chain.at(-1)!.header.meta.layers,
          basename(options.base!),
        )
      : undefined;
    const changedRanges = bitmap
      ? bitmap.changedRanges
      : overlay
        ? overlay.changedRanges
        : options.changedRanges;
    const map = await mapImage(image, {
      ...(options.drivers ? { drivers: options.drivers } : {}),
      fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
      crossCheck: options.crossCheck ?? false,
      dropUnallocated: true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const warnings = [
      ...map.warnings,
      ...(bitmap?.warning ? [bitmap.warning] : []),
      ...(overlay?.warning ? [overlay.warning] : []),
    ];
    for (const warning of warnings) options.onWarning?.(warning);
    const sourceName =
      options.sourceName ?? (typeof options.image === 'string' ? basename(options.image) : 'image');
    const common = {
      source: image.disk,
      used: map.used,
      blockSize: map.blockSize,
      tailUsed: map.tail.used,
      out: options.out,
      overwrite: options.overwrite ?? false,
      compress: options.compress ?? { type: 'zstd' as const, level: DEFAULT_ZSTD_LEVEL },
      meta: {
        sourceName,
        facts: {
          container: image.container.format,
          warnings: warnings.map((w) => w.message),
          ...(bitmap ? { dirtyBitmap: bitmap.tie } : {}),
          ...(layers ? { layers } : {}),
        },
        filesystem: map.parts.map((p) => p.content ?? 'unknown').join('+'),
      },
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
    };
    const backupId = randomBytes(16);
    // A chain with digest tables throughout needs no copy; one backup without a table would
    // otherwise be read back.
    const allTables = chain.every((b) => b.hasDigestTable);
    if (cache !== null) {
      try {
        await sweepStateDigests(cache.dir);
        const parent = chain.at(-1);
        if (parent !== undefined && !allTables) parentDigests = await cache.open(parent);
        stateWriter = await cache.create(backupId.toString('hex'));
      } catch (error) {
        cacheTrouble('cannot use', error);
      }
    }
    const written = {
      ...common,
      backupId,
      digestTable: options.digestTable ?? false,
      repeats: options.repeats ?? true,
      ...(stateWriter ? { stateDigests: stateWriter } : {}),
    };
    const result =
      chain.length > 0
        ? await writeIncremental({
            ...written,
            chain,
            parentDigests,
            parentHint: basename(options.base!),
            ...(changedRanges ? { changedRanges } : {}),
          })
        : await writeSnapshot(written);
    if (stateWriter !== null) {
      const committing = stateWriter;
      stateWriter = null;
      try {
        await committing.commit();
        // A chain needs its tip's copy only; a snapshot's stays for differentials made from it
        // until the sweep (30 days unused).
        const parent = chain.at(-1);
        if (parent !== undefined && parent.header.kind === 'incremental')
          await cache!.remove(parent.backupId);
      } catch (error) {
        cacheTrouble('cannot write to', error);
      }
    }
    return {
      ...result,
      imageBytes: map.size,
      usedBytes: usedBytes(map),
      chain: chain.map((reader) => reader.path),
      warnings: [...warnings, ...cacheWarnings],
      map,
      parentDigestsFrom:
        chain.length === 0
          ? null
          : parentDigests !== null
            ? 'cache'
            : allTables
              ? 'table'
              : 'frames',
    };
  } finally {
    await (stateWriter as StateDigestWriter | null)?.abort();
    await parentDigests?.close();
    await Promise.all(chain.map((reader) => reader.close()));
    if (typeof options.image === 'string') await image.close();
  }
}

/**
 * Delete the state digest files in cache directory `dir` not used for 30 days (SPEC.md §13), at
 * most once a day (the time of the last sweep is kept in `dkb-state-swept`).
 */
export async function sweepStateDigests(dir: string, now = Date.now()): Promise<void> {
  await sweepOnceADay(
    directoryCache(dir),
    'dkb-state',
    'dkb-state-swept',
    STATE_DIGESTS_MAX_AGE_MS,
    now,
  );
}

import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'diskube';
import { backup, type CompressOptions, parseChangedRanges } from 'diskube/node';
import { formatBytes, formatPercent, printJson } from '../format.js';
import { progressReporter } from '../progress.js';
import { printWarning } from '../warnings.js';
import { ALLOW_BACKING_DIR_HELP, collectDirs } from './inspect.js';
import { backupToRepo, locationOptions, type RepoOptions } from './repository.js';

const BACKUP_NO_CACHE_HELP =
  'keep no state digests of this backup for the next incremental, which then reads it back (with --repo: no copies of manifests and no block digests of stored chunks); default: kept in $DISKUBE_CACHE_DIR, else ~/.cache/diskube';

interface BackupOptions extends RepoOptions {
  name?: string;
  base?: string;
  level?: string;
  compress?: string;
  changedRanges?: string;
  json?: boolean;
  force?: boolean;
  fullCopyOnDoubt?: boolean;
  crossCheck?: boolean;
  allowBackingDir?: string[];
  dirtyBitmap?: string;
  overlayOnly?: boolean;
  parent?: string;
  digestTable?: boolean;
  /** commander's negation of `--no-repeats`: true unless it is given. */
  repeats?: boolean;
}

/** The zstd level when none is given (the library's default, shown in --help). */
const DEFAULT_LEVEL = 3;

function compression(options: BackupOptions): CompressOptions {
  const type = options.compress ?? 'zstd';
  if (type === 'none') return { type: 'none' };
  if (type !== 'zstd') {
    throw new InvalidArgumentError(`--compress must be zstd or none, not "${type}"`, {
      reason: 'usage',
    });
  }
  const level = options.level === undefined ? DEFAULT_LEVEL : Number(options.level);
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new InvalidArgumentError(
      `--level must be an integer from 1 to 19, not "${options.level}"`,
      { reason: 'usage' },
    );
  }
  return { type: 'zstd', level };
}

export function registerBackup(program: Command): void {
  locationOptions(program.command('backup'), 'with --repo: ', BACKUP_NO_CACHE_HELP)
    .description('Back up the used blocks of an image: a snapshot, or an incremental with --base.')
    .argument('<image>', 'filesystem image or whole disk')
    .argument('[out]', 'backup file to write (omit with --repo)')
    .option(
      '--repo <repo>',
      'back up into this repository instead (a directory or s3://bucket/prefix)',
    )
    .option('--name <vm>', 'with --repo: the VM (group) the snapshot belongs to')
    .option('--base <parent>', 'make an incremental relative to this backup')
    .option('--compress <type>', 'zstd or none', 'zstd')
    .option('--level <n>', `zstd level 1-19 (default ${DEFAULT_LEVEL})`)
    .option(
      '--changed-ranges <file>',
      'only read these byte ranges ("offset length" per line) for an incremental',
    )
    .option(
      '--dirty-bitmap <name>',
      "read only what this qcow2 persistent dirty bitmap marks changed since --base (QEMU's changed-block tracking; record it on every backup of the chain)",
    )
    .option(
      '--overlay-only',
      'the image is an overlay and --base (or, with --repo, a snapshot) holds its backing file: read only what the overlay holds',
    )
    .option(
      '--parent <snapshot>',
      "with --repo: the snapshot to back up against (vm@latest or an id; default the VM's latest, or with --overlay-only the newest made of the backing file)",
    )
    .option(
      '--full-copy-on-doubt',
      'copy every block when the filesystem metadata cannot be trusted',
    )
    .option(
      '--cross-check',
      "walk the filesystem's own references and keep blocks its map wrongly calls free",
    )
    .option(
      '--digest-table',
      'keep the block digests in the backup file (16 bytes per stored block): an incremental made from any copy of the chain then needs no cache and reads no old data',
    )
    .option(
      '--no-repeats',
      'store a block again when the file already holds an identical one, so that readers of backup format 2.1 can read the file (by default the copy is a reference, format 2.2)',
    )
    .option('--allow-backing-dir <dir>', ALLOW_BACKING_DIR_HELP, collectDirs)
    .option('-f, --force', 'overwrite an existing output file')
    .option('--json', 'print a JSON summary')
    .action(async (image: string, out: string | undefined, options: BackupOptions) => {
      if (options.repo !== undefined) {
        if (
          out !== undefined ||
          options.base ||
          options.dirtyBitmap ||
          options.digestTable ||
          options.repeats === false
        ) {
          throw new InvalidArgumentError(
            "--repo takes no output file, --base, --dirty-bitmap, --digest-table or --no-repeats (the parent is --parent, or the VM's latest snapshot)",
            {
              reason: 'usage',
            },
          );
        }
        return backupToRepo(image, options);
      }
      if (options.parent !== undefined) {
        throw new InvalidArgumentError('--parent is for --repo; a backup file takes --base', {
          reason: 'usage',
        });
      }
      if (out === undefined) {
        throw new InvalidArgumentError('give an output file, or --repo <repo> --name <vm>', {
          reason: 'usage',
        });
      }
      const compress = compression(options);
      if (options.changedRanges && !options.base) {
        throw new InvalidArgumentError('--changed-ranges needs --base', { reason: 'usage' });
      }
      const changedRanges = options.changedRanges
        ? parseChangedRanges(await readFile(options.changedRanges, 'utf8'))
        : undefined;
      const started = performance.now();
      const progress = progressReporter('backup', !options.json);
      try {
        const result = await backup({
          image,
          ...(options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {}),
          out,
          ...(options.base ? { base: options.base } : {}),
          ...(changedRanges ? { changedRanges } : {}),
          ...(options.dirtyBitmap !== undefined ? { dirtyBitmap: options.dirtyBitmap } : {}),
          ...(options.overlayOnly ? { overlayOnly: true } : {}),
          compress,
          fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
          crossCheck: options.crossCheck ?? false,
          overwrite: options.force ?? false,
          digestTable: options.digestTable ?? false,
          repeats: options.repeats ?? true,
          ...(options.cache === false ? { cache: false as const } : {}),
          onWarning: printWarning,
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
        });
        progress.finish();
        const seconds = (performance.now() - started) / 1000;
        if (options.json) {
          printJson({
            kind: result.kind,
            path: result.path,
            backupId: result.backupId,
            imageBytes: result.imageBytes,
            usedBytes: result.usedBytes,
            storedBytes: result.fileLength,
            ratio: result.imageBytes > 0 ? result.fileLength / result.imageBytes : 0,
            changedBlocks: result.changedBlocks,
            storedBlocks: result.storedBlocks,
            repeatedBlocks: result.repeatedBlocks,
            bytesRead: result.bytesRead,
            parentDigestsFrom: result.parentDigestsFrom,
            parentBytesRead: result.parentBytesRead,
            seconds,
          });
          return;
        }
        process.stdout.write(
          `${result.kind} ${out}: ${formatBytes(result.usedBytes)} in use of ${formatBytes(result.imageBytes)}, stored ${formatBytes(result.fileLength)} (${formatPercent(result.fileLength, result.imageBytes)} of the image)` +
            `${result.changedBlocks !== null ? `, ${result.changedBlocks} blocks changed` : ''}${result.repeatedBlocks > 0 ? `, ${result.repeatedBlocks} repeated blocks held once` : ''} in ${seconds.toFixed(2)} s\n`,
        );
        // Reading the parent back is correct but costs time: say why it happened.
        if (result.parentDigestsFrom === 'frames')
          process.stdout.write(
            `read ${formatBytes(result.parentBytesRead)} of the parent back to compare: its state digests were not in the cache${options.cache === false ? ' (--no-cache)' : ''} and the chain has no digest tables\n`,
          );
      } finally {
        progress.finish();
      }
    });
}

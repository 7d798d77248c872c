import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError } from '@diskube/core';
import {
  type BackupReader,
  type CompressOptions,
  DEFAULT_ZSTD_LEVEL,
  parseChangedRanges,
  writeIncremental,
  writeSnapshot,
} from '@diskube/format';
import { discoverChain } from '@diskube/restore';
import type { Command } from 'commander';
import { mapImage, printWarnings, usedBytes } from '../analyze.js';
import { formatBytes, formatPercent, printJson } from '../format.js';
import { openImage } from '../open-image.js';
import { progressReporter } from '../progress.js';

interface BackupOptions {
  base?: string;
  level?: string;
  compress?: string;
  changedRanges?: string;
  json?: boolean;
  force?: boolean;
  fullCopyOnDoubt?: boolean;
}

function compression(options: BackupOptions): CompressOptions {
  const type = options.compress ?? 'zstd';
  if (type === 'none') return { type: 'none' };
  if (type !== 'zstd') {
    throw new InvalidArgumentError(`--compress must be zstd or none, not "${type}"`, {
      reason: 'usage',
    });
  }
  const level = options.level === undefined ? DEFAULT_ZSTD_LEVEL : Number(options.level);
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new InvalidArgumentError(
      `--level must be an integer from 1 to 19, not "${options.level}"`,
      {
        reason: 'usage',
      },
    );
  }
  return { type: 'zstd', level };
}

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('Back up the used blocks of an image: a snapshot, or an incremental with --base.')
    .argument('<image>', 'filesystem image or whole disk')
    .argument('<out>', 'backup file to write')
    .option('--base <parent>', 'make an incremental relative to this backup')
    .option('--compress <type>', 'zstd or none', 'zstd')
    .option('--level <n>', `zstd level 1-19 (default ${DEFAULT_ZSTD_LEVEL})`)
    .option(
      '--changed-ranges <file>',
      'only read these byte ranges ("offset length" per line) for an incremental',
    )
    .option(
      '--full-copy-on-doubt',
      'copy every block when the filesystem metadata cannot be trusted',
    )
    .option('-f, --force', 'overwrite an existing output file')
    .option('--json', 'print a JSON summary')
    .action(async (image: string, out: string, options: BackupOptions) => {
      const compress = compression(options);
      if (options.changedRanges && !options.base) {
        throw new InvalidArgumentError('--changed-ranges needs --base', { reason: 'usage' });
      }
      const started = performance.now();
      const opened = await openImage(image);
      const source = opened.disk;
      // The parent and its ancestors (found beside it by parent id): an incremental's digest
      // table covers only its own stored blocks, so the parent state's digests come from all.
      let chain: BackupReader[] | null = null;
      const progress = progressReporter('backup', !options.json);
      try {
        if (options.base) chain = await discoverChain(options.base);
        // Ranges the container holds no data for are zeros: skip them outright.
        const map = await mapImage(opened, {
          fullCopyOnDoubt: options.fullCopyOnDoubt,
          dropUnallocated: true,
        });
        printWarnings(map.warnings);
        const common = {
          source,
          used: map.used,
          blockSize: map.blockSize,
          tailUsed: map.tail.used,
          out,
          overwrite: options.force ?? false,
          compress,
          meta: {
            sourceName: basename(image),
            facts: {
              container: opened.container.format,
              warnings: map.warnings.map((w) => w.message),
            },
            filesystem: map.parts.map((p) => p.content ?? 'unknown').join('+'),
          },
          onProgress: (p: { bytesDone: number; bytesTotal: number }) =>
            progress.update(p.bytesDone, p.bytesTotal),
        };
        const result = chain
          ? await writeIncremental({
              ...common,
              chain,
              parentHint: basename(options.base!),
              changedRanges: options.changedRanges
                ? parseChangedRanges(await readFile(options.changedRanges, 'utf8'))
                : undefined,
            })
          : await writeSnapshot(common);
        progress.finish();
        const seconds = (performance.now() - started) / 1000;
        const inUse = usedBytes(map);
        const summary = {
          kind: result.kind,
          path: result.path,
          backupId: result.backupId,
          imageBytes: map.size,
          usedBytes: inUse,
          storedBytes: result.fileLength,
          ratio: map.size > 0 ? result.fileLength / map.size : 0,
          changedBlocks: result.changedBlocks,
          bytesRead: result.bytesRead,
          seconds,
        };
        if (options.json) {
          printJson(summary);
          return;
        }
        process.stdout.write(
          `${result.kind} ${out}: ${formatBytes(inUse)} in use of ${formatBytes(map.size)}, stored ${formatBytes(result.fileLength)} (${formatPercent(result.fileLength, map.size)} of the image)` +
            `${result.changedBlocks !== null ? `, ${result.changedBlocks} blocks changed` : ''} in ${seconds.toFixed(2)} s\n`,
        );
      } finally {
        progress.finish();
        await Promise.all((chain ?? []).map((r) => r.close()));
        await opened.close();
      }
    });
}

import type { Command } from 'commander';
import { usedByteRanges } from 'diskube';
import { inspectImageFile } from 'diskube/node';
import { formatBytes, formatPercent, printJson } from '../format.js';
import { printWarning } from '../warnings.js';
import { ALLOW_BACKING_DIR_HELP, collectDirs } from './inspect.js';

interface UsedOptions {
  json?: boolean;
  fullCopyOnDoubt?: boolean;
  crossCheck?: boolean;
  allowBackingDir?: string[];
}

export function registerUsed(program: Command): void {
  program
    .command('used')
    .description('Print the byte ranges of an image that a backup must keep.')
    .argument('<image>', 'filesystem image or whole disk')
    .option('--json', 'print {"size", "blockSize", "ranges": [[offset, length], …]} in bytes')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .option(
      '--cross-check',
      "also keep blocks the filesystem's own references use but its map calls free",
    )
    .option('--allow-backing-dir <dir>', ALLOW_BACKING_DIR_HELP, collectDirs)
    .action(async (image: string, options: UsedOptions) => {
      const inspection = await inspectImageFile(image, {
        fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
        crossCheck: options.crossCheck ?? false,
        ...(options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {}),
      });
      const { size, blockSize, blockCount, usedBytes, warnings } = inspection;
      const ranges = usedByteRanges(inspection.map);
      const filesystems = inspection.parts.map((p) => p.content ?? 'unknown');
      warnings.forEach(printWarning);
      if (options.json) {
        const usedBlocks = inspection.used.count();
        printJson({
          size,
          blockSize,
          usedBlocks,
          blockCount,
          usedBytes,
          filesystems,
          ranges,
          warnings,
        });
        return;
      }
      const lines = ranges.map(([offset, length]) => `${offset}\t${length}`);
      lines.push(
        `# ${ranges.length} ranges, ${formatBytes(usedBytes)} used of ${formatBytes(size)} (${formatPercent(usedBytes, size)}), ${filesystems.join(', ')}, block size ${blockSize}`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

import type { Command } from 'commander';
import { analyzeImage, printWarnings, usedByteRanges, usedBytes } from '../analyze.js';
import { formatBytes, formatPercent, printJson } from '../format.js';

interface UsedOptions {
  json?: boolean;
  fullCopyOnDoubt?: boolean;
}

export function registerUsed(program: Command): void {
  program
    .command('used')
    .description('Print the byte ranges of an image that a backup must keep.')
    .argument('<image>', 'filesystem image or whole disk')
    .option('--json', 'print {"size", "blockSize", "ranges": [[offset, length], …]} in bytes')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .action(async (image: string, options: UsedOptions) => {
      const { map } = await analyzeImage(image, { fullCopyOnDoubt: options.fullCopyOnDoubt });
      const ranges = usedByteRanges(map);
      const used = usedBytes(map);
      const filesystems = map.parts.map((p) => p.content ?? 'unknown');
      // Warnings go to stderr in every mode: stdout stays machine-readable.
      printWarnings(map.warnings);
      if (options.json) {
        printJson({
          size: map.size,
          blockSize: map.blockSize,
          usedBlocks: map.used.count(),
          blockCount: map.blockCount,
          usedBytes: used,
          filesystems,
          ranges,
          warnings: map.warnings,
        });
        return;
      }
      const lines = ranges.map(([offset, length]) => `${offset}\t${length}`);
      lines.push(
        `# ${ranges.length} ranges, ${formatBytes(used)} used of ${formatBytes(map.size)} (${formatPercent(used, map.size)}), ${filesystems.join(', ')}, block size ${map.blockSize}`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

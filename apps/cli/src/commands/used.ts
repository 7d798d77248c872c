import { UnsupportedError } from '@diskube/core';
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
    .description('Print the byte ranges of a filesystem image that hold used blocks.')
    .argument('<image>', 'image holding a single filesystem')
    .option('--json', 'print {"size", "blockSize", "ranges": [[offset, length], …]} in bytes')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .action(async (image: string, options: UsedOptions) => {
      const analysis = await analyzeImage(image, { fullCopyOnDoubt: options.fullCopyOnDoubt });
      const { result } = analysis;
      if (!result) {
        throw new UnsupportedError(`no filesystem recognised in ${image}`, { reason: 'unrecognised' });
      }
      const ranges = usedByteRanges(result);
      const used = usedBytes(result);
      if (options.json) {
        printJson({
          size: analysis.size,
          filesystem: result.filesystem,
          blockSize: result.blockSize,
          blockCount: result.blockCount,
          usedBlocks: result.used.count(),
          usedBytes: used,
          ranges,
          warnings: result.warnings,
        });
        return;
      }
      printWarnings(result.warnings);
      const lines = ranges.map(([offset, length]) => `${offset}\t${length}`);
      lines.push(
        `# ${ranges.length} ranges, ${formatBytes(used)} used of ${formatBytes(analysis.size)} (${formatPercent(used, analysis.size)}), ${result.filesystem}, block size ${result.blockSize}`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

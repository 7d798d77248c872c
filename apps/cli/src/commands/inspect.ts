import type { Command } from 'commander';
import { analyzeImage, printWarnings, usedBytes } from '../analyze.js';
import { formatBytes, formatPercent, printJson } from '../format.js';

interface InspectOptions {
  json?: boolean;
  fullCopyOnDoubt?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show what an image holds: filesystem, block size, blocks used and total.')
    .argument('<image>', 'raw disk or filesystem image')
    .option('--json', 'print a JSON object instead of text')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .action(async (image: string, options: InspectOptions) => {
      const analysis = await analyzeImage(image, { fullCopyOnDoubt: options.fullCopyOnDoubt });
      const { result } = analysis;
      if (options.json) {
        printJson({
          path: analysis.path,
          size: analysis.size,
          partitionTable: analysis.partitionTable,
          filesystem: result && {
            type: result.filesystem,
            blockSize: result.blockSize,
            blockCount: result.blockCount,
            usedBlocks: result.used.count(),
            usedBytes: usedBytes(result),
            tail: result.tail,
            facts: result.facts,
            warnings: result.warnings,
          },
        });
        return;
      }
      const out: string[] = [`image        ${analysis.path}`, `size         ${formatBytes(analysis.size)} (${analysis.size} bytes)`];
      if (!result) {
        out.push(
          analysis.partitionTable
            ? `contents     ${analysis.partitionTable.toUpperCase()} partition table (whole-disk support is not in this version)`
            : 'contents     no filesystem recognised',
        );
      } else {
        const used = result.used.count();
        out.push(
          `filesystem   ${result.filesystem}`,
          `block size   ${result.blockSize}`,
          `blocks       ${used} used of ${result.blockCount} (${formatPercent(used, result.blockCount)})`,
          `used bytes   ${formatBytes(usedBytes(result))}`,
        );
        if (result.tail.length > 0) {
          out.push(`tail         ${formatBytes(result.tail.length)} after the filesystem, ${result.tail.used ? 'kept' : 'not kept'}: ${result.tail.reason}`);
        }
        for (const [key, value] of Object.entries(result.facts)) {
          out.push(`${key.padEnd(12)} ${Array.isArray(value) ? value.join(',') : String(value)}`);
        }
        printWarnings(result.warnings);
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}

import { InvalidArgumentError } from '@diskube/core';
import { discoverChain, type RestoreStrategy, restoreImage } from '@diskube/restore';
import type { Command } from 'commander';
import { formatBytes, printJson } from '../format.js';
import { progressReporter } from '../progress.js';

interface RestoreCommandOptions {
  strategy?: string;
  zeroUnused?: boolean;
  force?: boolean;
  json?: boolean;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('Restore the image a backup (and the chain of backups before it) describes.')
    .argument('<backup>', 'snapshot or incremental; its parents are found beside it')
    .argument('<output>', 'raw image to write (unused blocks become holes) or a block device')
    .option(
      '--strategy <name>',
      'reverse (each block written once) or patch (replay in order)',
      'reverse',
    )
    .option('--zero-unused', 'write zeros over unused blocks instead of leaving holes')
    .option('-f, --force', 'overwrite an existing output file')
    .option('--json', 'print a JSON summary')
    .action(async (backup: string, output: string, options: RestoreCommandOptions) => {
      const strategy = options.strategy as RestoreStrategy;
      if (strategy !== 'reverse' && strategy !== 'patch') {
        throw new InvalidArgumentError(`--strategy must be reverse or patch, not "${strategy}"`, {
          reason: 'usage',
        });
      }
      const started = performance.now();
      const chain = await discoverChain(backup);
      const progress = progressReporter('restore', !options.json);
      try {
        const result = await restoreImage({
          chain,
          target: output,
          strategy,
          zeroUnused: options.zeroUnused ?? false,
          overwrite: options.force ?? false,
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
        });
        progress.finish();
        const seconds = (performance.now() - started) / 1000;
        if (options.json) {
          printJson({
            ...result,
            writeCounts: undefined,
            chain: chain.map((b) => b.path),
            seconds,
          });
          return;
        }
        process.stdout.write(
          `restored ${output} from ${chain.length} backup${chain.length === 1 ? '' : 's'} (${strategy}): read ${formatBytes(result.bytesRead)}, wrote ${formatBytes(result.bytesWritten)} in ${seconds.toFixed(2)} s\n`,
        );
      } finally {
        progress.finish();
        for (const reader of chain) await reader.close();
      }
    });
}

import { extname } from 'node:path';
import { InvalidArgumentError } from '@diskube/core';
import {
  containerTarget,
  discoverChain,
  type RestoreStrategy,
  type RestoreTarget,
  restoreImage,
} from '@diskube/restore';
import type { Command } from 'commander';
import { formatBytes, printJson } from '../format.js';
import { progressReporter } from '../progress.js';

interface RestoreCommandOptions {
  strategy?: string;
  format?: string;
  compressed?: boolean;
  zeroUnused?: boolean;
  force?: boolean;
  json?: boolean;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('Restore the image a backup (and the chain of backups before it) describes.')
    .argument('<backup>', 'snapshot or incremental; its parents are found beside it')
    .argument(
      '<output>',
      'image to write (raw, qcow2 or VDI; unused blocks become holes) or a block device',
    )
    .option(
      '--format <name>',
      'raw, qcow2 (v3, 64 KiB clusters) or vdi (dynamic, 1 MiB blocks); default from the output extension (.qcow2, .vdi), else raw',
    )
    .option(
      '--strategy <name>',
      'reverse (each block written once) or patch (replay in order)',
      'reverse',
    )
    .option('--compressed', 'qcow2 only: deflate-compress clusters (smaller file, slower restore)')
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
      const format = outputFormat(output, options.format);
      if (options.compressed && format !== 'qcow2') {
        throw new InvalidArgumentError(`--compressed needs qcow2 output, not ${format}`, {
          reason: 'usage',
        });
      }
      const started = performance.now();
      const chain = await discoverChain(backup);
      const progress = progressReporter('restore', !options.json);
      try {
        // A container is built by its own target; raw goes to restoreImage's file/device target.
        const target: string | RestoreTarget =
          format === 'raw'
            ? output
            : await containerTarget(output, chain.at(-1)!.header.sourceSize, {
                format,
                overwrite: options.force ?? false,
                ...(options.compressed ? { compress: 'deflate' as const } : {}),
              });
        const result = await restoreImage({
          chain,
          target,
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
            format,
            writeCounts: undefined,
            chain: chain.map((b) => b.path),
            seconds,
          });
          return;
        }
        process.stdout.write(
          `restored ${output} (${format}) from ${chain.length} backup${chain.length === 1 ? '' : 's'} (${strategy}): read ${formatBytes(result.bytesRead)}, wrote ${formatBytes(result.bytesWritten)} in ${seconds.toFixed(2)} s\n`,
        );
      } finally {
        progress.finish();
        for (const reader of chain) await reader.close();
      }
    });
}

/** `--format`, or the output's extension (.qcow2, .vdi), else raw. */
export function outputFormat(output: string, option?: string): 'raw' | 'qcow2' | 'vdi' {
  if (option === undefined) {
    const ext = extname(output).toLowerCase();
    return ext === '.qcow2' ? 'qcow2' : ext === '.vdi' ? 'vdi' : 'raw';
  }
  if (option === 'raw' || option === 'qcow2' || option === 'vdi') return option;
  throw new InvalidArgumentError(`--format must be raw, qcow2 or vdi, not "${option}"`, {
    reason: 'usage',
  });
}

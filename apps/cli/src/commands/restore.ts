import type { Command } from 'commander';
import { InvalidArgumentError } from 'diskube';
import { type RestoreFormat, type RestoreStrategy, restore, restoreFormatOf } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { progressReporter } from '../progress.js';
import { ALLOW_BACKING_DIR_HELP, collectDirs } from './inspect.js';
import { locationOptions, type RepoOptions, restoreFromRepo } from './repository.js';

interface RestoreCommandOptions extends RepoOptions {
  strategy?: string;
  format?: string;
  compressed?: boolean;
  zeroUnused?: boolean;
  force?: boolean;
  json?: boolean;
  backing?: string;
  allowBackingDir?: string[];
}

export function registerRestore(program: Command): void {
  locationOptions(program.command('restore'), 'with --repo: ')
    .description('Restore the image a backup (and the chain of backups before it) describes.')
    .argument(
      '<backup>',
      'snapshot or incremental (its parents are found beside it); with --repo: <vm>@latest or a snapshot id',
    )
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
    .option(
      '--backing <image>',
      'write a qcow2 overlay on this image (the template the disk was an overlay of): only clusters whose used blocks differ from it; unused blocks read as its bytes',
    )
    .option('--allow-backing-dir <dir>', ALLOW_BACKING_DIR_HELP, collectDirs)
    .option(
      '--repo <repo>',
      'restore a snapshot from this repository (a directory or s3://bucket/prefix)',
    )
    .option('-f, --force', 'overwrite an existing output file')
    .option('--json', 'print a JSON summary')
    .action(async (backup: string, output: string, options: RestoreCommandOptions) => {
      if (options.repo !== undefined) {
        if (options.backing !== undefined) {
          throw new InvalidArgumentError(
            '--backing restores a backup file; a repository snapshot restores whole',
            { reason: 'usage' },
          );
        }
        return restoreFromRepo(backup, output, options);
      }
      const strategy = choice<RestoreStrategy>('--strategy', options.strategy, [
        'reverse',
        'patch',
      ]);
      const format = outputFormat(
        output,
        options.format ?? (options.backing ? 'qcow2' : undefined),
      );
      if (options.backing !== undefined && (format !== 'qcow2' || options.zeroUnused)) {
        throw new InvalidArgumentError(
          '--backing writes a qcow2 overlay (not with --zero-unused or another --format)',
          { reason: 'usage' },
        );
      }
      if (options.compressed && format !== 'qcow2') {
        throw new InvalidArgumentError(`--compressed needs qcow2 output, not ${format}`, {
          reason: 'usage',
        });
      }
      const started = performance.now();
      const progress = progressReporter('restore', !options.json);
      try {
        const result = await restore({
          backup,
          out: output,
          format,
          strategy,
          zeroUnused: options.zeroUnused ?? false,
          compressed: options.compressed ?? false,
          overwrite: options.force ?? false,
          ...(options.backing !== undefined ? { backing: options.backing } : {}),
          ...(options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {}),
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
        });
        progress.finish();
        const seconds = (performance.now() - started) / 1000;
        if (options.json) {
          printJson({ ...result, seconds });
          return;
        }
        const n = result.chain.length;
        process.stdout.write(
          `restored ${output} (${format}) from ${n} backup${n === 1 ? '' : 's'} (${strategy}): read ${formatBytes(result.bytesRead)}, wrote ${formatBytes(result.bytesWritten)} in ${seconds.toFixed(2)} s\n`,
        );
      } finally {
        progress.finish();
      }
    });
}

function choice<T extends string>(flag: string, value: string | undefined, allowed: T[]): T {
  if (allowed.includes(value as T)) return value as T;
  const list = `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}`;
  throw new InvalidArgumentError(`${flag} must be ${list}, not "${value}"`, {
    reason: 'usage',
  });
}

/** `--format`, or the output's extension (.qcow2, .vdi), else raw. */
export function outputFormat(output: string, option?: string): RestoreFormat {
  if (option === undefined) return restoreFormatOf(output);
  return choice<RestoreFormat>('--format', option, ['raw', 'qcow2', 'vdi']);
}

import type { Command } from 'commander';
import { InvalidArgumentError } from 'diskube';
import { initRepositoryAt, unlockRepository } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import {
  openRepo,
  REPO_HELP,
  type RepoOptions,
  repoCommand,
  S3_ENDPOINT_HELP,
} from './repository.js';

/** `diskube repo init <repo>` and `diskube repo unlock --repo <repo>`. */
export function registerRepo(program: Command): void {
  const repo = program.command('repo').description('Create and look after a fleet repository.');
  repo
    .command('init')
    .description('Create a repository (a directory or s3://bucket/prefix).')
    .argument('<repo>', REPO_HELP)
    .option(
      '--chunk-size <bytes>',
      'chunk size, a power of two from 64 KiB to 16 MiB (default 1 MiB on a directory, 4 MiB on S3)',
    )
    .option('--s3-endpoint <url>', S3_ENDPOINT_HELP)
    .option('--json', 'print a JSON summary')
    .action(async (location: string, options: RepoOptions & { chunkSize?: string }) => {
      const chunkSize = options.chunkSize === undefined ? undefined : Number(options.chunkSize);
      if (chunkSize !== undefined && !Number.isSafeInteger(chunkSize)) {
        throw new InvalidArgumentError(
          `--chunk-size must be a number of bytes, not "${options.chunkSize}"`,
          {
            reason: 'usage',
          },
        );
      }
      const created = await initRepositoryAt(location, {
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(options.s3Endpoint ? { s3Endpoint: options.s3Endpoint } : {}),
      });
      if (options.json) printJson({ repo: created.backend.location, ...created.config });
      else
        process.stdout.write(
          `created repository ${created.backend.location} (${formatBytes(created.config.chunkSize)} chunks, id ${created.config.id})\n`,
        );
    });
  repoCommand(
    repo,
    'unlock',
    'Remove stale locks (left by a killed backup or prune); --all removes every lock.',
  )
    .option('--all', 'remove every lock, live or not (only when nothing runs on the repository)')
    .option('--json', 'print a JSON summary')
    .action(async (options: RepoOptions & { all?: boolean }) => {
      const removed = await unlockRepository(await openRepo(options), {
        all: options.all ?? false,
      });
      if (options.json) printJson({ removed });
      else {
        process.stdout.write(`removed ${removed.length} lock${removed.length === 1 ? '' : 's'}\n`);
        for (const l of removed)
          process.stdout.write(
            `  ${l.key} (${l.operation} on ${l.host}, pid ${l.pid}, ${l.time})\n`,
          );
      }
    });
}

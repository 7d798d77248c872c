import type { Command } from 'commander';
import { prune } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { openRepo, REPO_HELP, type RepoOptions, S3_ENDPOINT_HELP } from './repository.js';

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('Delete chunks no snapshot references (mark and sweep, under an exclusive lock).')
    .requiredOption('--repo <repo>', REPO_HELP)
    .option('--dry-run', 'only count what would be deleted')
    .option('--s3-endpoint <url>', S3_ENDPOINT_HELP)
    .option('--json', 'print JSON')
    .action(async (options: RepoOptions & { dryRun?: boolean }) => {
      const result = await prune(await openRepo(options), { dryRun: options.dryRun ?? false });
      if (options.json) printJson(result);
      else
        process.stdout.write(
          `${result.dryRun ? 'would delete' : 'deleted'} ${result.deletedObjects} objects (${result.deletedChunks} chunks, ${formatBytes(result.deletedBytes)}); ${result.keptChunks} chunks referenced by ${result.snapshots} snapshots\n`,
        );
    });
}

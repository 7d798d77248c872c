import type { Command } from 'commander';
import { prune } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { openRepo, type RepoOptions, repoCommand } from './repository.js';

export function registerPrune(program: Command): void {
  repoCommand(
    program,
    'prune',
    'Delete chunks no snapshot references (mark and sweep, under an exclusive lock).',
  )
    .option('--dry-run', 'only count what would be deleted')
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

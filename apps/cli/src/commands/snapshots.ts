import type { Command } from 'commander';
import { listSnapshots } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { openRepo, type RepoOptions, repoCommand } from './repository.js';

export function registerSnapshots(program: Command): void {
  repoCommand(program, 'snapshots', 'List the snapshots in a repository, oldest first.')
    .option('--name <vm>', 'only this VM')
    .option('--json', 'print JSON')
    .action(async (options: RepoOptions & { name?: string }) => {
      const repo = await openRepo(options);
      const all = await listSnapshots(repo, options.name ? { name: options.name } : {});
      if (options.json) {
        printJson(
          all.map((s) => ({
            id: s.id,
            name: s.name,
            time: s.time,
            host: s.host,
            parent: s.parent,
            diskSize: s.diskSize,
            usedBytes: s.usedBytes,
            newChunks: s.newChunks,
            newPatches: s.newPatches ?? 0,
            newStoredBytes: s.newStoredBytes,
            facts: s.facts,
            summary: s.summary,
          })),
        );
        return;
      }
      for (const s of all) {
        process.stdout.write(
          `${s.id.slice(0, 12)}  ${s.time}  ${s.name}  disk ${formatBytes(s.diskSize)}, used ${formatBytes(s.usedBytes)}, new ${formatBytes(s.newStoredBytes)}\n`,
        );
      }
      process.stdout.write(`${all.length} snapshot${all.length === 1 ? '' : 's'}\n`);
    });
}

import type { Command } from 'commander';
import { stats } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { openRepo, type RepoOptions, repoCommand } from './repository.js';

export function registerStats(program: Command): void {
  repoCommand(
    program,
    'stats',
    'Logical, used and stored bytes and the dedup ratio, per VM and in total.',
  )
    .option('--json', 'print JSON')
    .action(async (options: RepoOptions) => {
      const result = await stats(await openRepo(options));
      if (options.json) {
        printJson(result);
        return;
      }
      const line = (
        name: string,
        g: {
          snapshots: number;
          logicalBytes: number;
          usedBytes: number;
          storedBytes: number;
          dedupRatio: number;
        },
      ) =>
        `${name.padEnd(20)} ${String(g.snapshots).padStart(5)}  ${formatBytes(g.logicalBytes).padStart(10)}  ${formatBytes(g.usedBytes).padStart(10)}  ${formatBytes(g.storedBytes).padStart(10)}  ${g.dedupRatio.toFixed(2)}\n`;
      process.stdout.write(`${'vm'.padEnd(20)} snaps     logical        used      stored  dedup\n`);
      for (const [name, g] of Object.entries(result.vms)) process.stdout.write(line(name, g));
      process.stdout.write(line('total', result.total));
    });
}

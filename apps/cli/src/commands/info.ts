import type { Command } from 'commander';
import { backupInfo } from 'diskube/node';
import { formatBytes, formatPercent, printJson } from '../format.js';

interface InfoOptions {
  json?: boolean;
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('Describe a backup: what was backed up, when, and how much was stored.')
    .argument('<backup>', 'snapshot or incremental')
    .option('--json', 'print a JSON object')
    .action(async (backup: string, options: InfoOptions) => {
      const info = await backupInfo(backup);
      if (options.json) {
        printJson(info);
        return;
      }
      const rows: Array<[string, string]> = [
        ['backup', info.path],
        ['kind', info.kind],
        ['id', info.backupId],
        ...(info.parentId
          ? ([['parent', `${info.parentId} (${info.parentHint})`]] as Array<[string, string]>)
          : []),
        ['created', info.createdAt],
        ['source', `${info.sourceName}, ${formatBytes(info.sourceSize)}`],
        ['filesystem', info.filesystem],
        ['block size', String(info.blockSize)],
        [
          'used',
          `${info.usedBlocks} of ${info.blockCount} blocks (${formatPercent(info.usedBlocks, info.blockCount)}), ${info.zeroBlocks} all-zero`,
        ],
        ...(info.changedBlocks !== null
          ? ([
              ['changed', `${info.changedBlocks} blocks, ${info.freedBlocks ?? 0} newly unused`],
            ] as Array<[string, string]>)
          : []),
        [
          'stored',
          `${info.storedBlocks} blocks in ${info.frames} frames${info.repeatedBlocks > 0 ? ` (+ ${info.repeatedBlocks} repeated blocks held once)` : ''}, ${info.compression}, ${info.digestTable ? 'with' : 'no'} digest table`,
        ],
        [
          'file',
          `${formatBytes(info.fileLength)} (${formatPercent(info.fileLength, info.sourceSize)} of the source)`,
        ],
      ];
      process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n')}\n`);
    });
}

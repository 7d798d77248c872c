import type { Command } from 'commander';
import { CorruptError } from 'diskube';
import { verify } from 'diskube/node';
import { printJson } from '../format.js';

interface VerifyOptions {
  json?: boolean;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('Check every checksum of a backup and of the chain it depends on.')
    .argument('<backup>', 'snapshot or incremental')
    .option('--json', 'print a JSON report')
    .action(async (backup: string, options: VerifyOptions) => {
      const { ok, backups } = await verify(backup);
      if (options.json) printJson({ ok, backups });
      else {
        for (const { path, report } of backups) {
          process.stdout.write(
            `${report.ok ? 'ok     ' : 'DAMAGED'} ${path}: ${report.framesChecked} frames, ${report.blocksChecked} blocks checked\n`,
          );
          for (const problem of report.problems) {
            process.stdout.write(
              `  ${problem.structure}${problem.offset !== undefined ? ` at byte ${problem.offset}` : ''}: ${problem.message}\n`,
            );
          }
        }
      }
      const bad = backups.find((b) => !b.report.ok);
      if (bad) {
        // Damage is an exit code for scripts: 3, like any corrupt input.
        const first = bad.report.problems[0];
        throw new CorruptError(`${bad.path} is damaged`, {
          structure: first?.structure,
          offset: first?.offset,
          reason: first?.reason ?? 'verify',
        });
      }
    });
}

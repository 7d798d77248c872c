import type { Command } from 'commander';
import { CorruptError, InvalidArgumentError } from 'diskube';
import { verify } from 'diskube/node';
import { printJson } from '../format.js';
import { locationOptions, type RepoOptions, verifyRepo } from './repository.js';

interface VerifyOptions extends RepoOptions {
  readData?: boolean;
}

export function registerVerify(program: Command): void {
  locationOptions(program.command('verify'), 'with --repo: ')
    .description('Check every checksum of a backup and of the chain it depends on.')
    .argument('[backup]', 'snapshot or incremental (omit with --repo)')
    .option('--repo <repo>', 'check a repository instead (a directory or s3://bucket/prefix)')
    .option('--read-data', 'with --repo: read and re-hash every chunk, not only list them')
    .option('--json', 'print a JSON report')
    .action(async (backup: string | undefined, options: VerifyOptions) => {
      if (options.repo !== undefined) {
        if (backup !== undefined) {
          throw new InvalidArgumentError(
            '--repo checks the whole repository: give no backup file',
            { reason: 'usage' },
          );
        }
        return verifyRepo(options);
      }
      if (backup === undefined)
        throw new InvalidArgumentError('give a backup file, or --repo <repo>', { reason: 'usage' });
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

import type { Command } from 'commander';
import { InvalidArgumentError } from 'diskube';
import { type ForgetPolicy, forget } from 'diskube/node';
import { printJson } from '../format.js';
import { openRepo, type RepoOptions, repoCommand } from './repository.js';

type Keep = { keepLast?: string; keepDaily?: string; keepWeekly?: string; keepMonthly?: string };

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError(`${flag} must be a whole number, not "${value}"`, {
      reason: 'usage',
    });
  }
  return n;
}

export function registerForget(program: Command): void {
  repoCommand(
    program,
    'forget',
    'Remove snapshots a retention policy does not keep (per VM); "prune" then frees their chunks.',
  )
    .option('--keep-last <n>', 'keep the n newest snapshots')
    .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days with one')
    .option('--keep-weekly <n>', 'keep the newest snapshot of each of the last n weeks with one')
    .option('--keep-monthly <n>', 'keep the newest snapshot of each of the last n months with one')
    .option('--name <vm>', 'only this VM')
    .option('--dry-run', 'only show what would be removed')
    .option('--json', 'print JSON')
    .action(async (options: RepoOptions & Keep & { name?: string; dryRun?: boolean }) => {
      const policy: ForgetPolicy = {};
      const entries: Array<[keyof ForgetPolicy, string, string | undefined]> = [
        ['keepLast', '--keep-last', options.keepLast],
        ['keepDaily', '--keep-daily', options.keepDaily],
        ['keepWeekly', '--keep-weekly', options.keepWeekly],
        ['keepMonthly', '--keep-monthly', options.keepMonthly],
      ];
      for (const [key, flag, value] of entries) {
        const n = count(flag, value);
        if (n !== undefined) policy[key] = n;
      }
      const repo = await openRepo(options);
      const result = await forget(repo, {
        ...policy,
        ...(options.name ? { name: options.name } : {}),
        dryRun: options.dryRun ?? false,
      });
      if (options.json) {
        printJson({
          dryRun: result.dryRun,
          keep: result.keep.map((k) => ({
            id: k.snapshot.id,
            name: k.snapshot.name,
            time: k.snapshot.time,
            reasons: k.reasons,
          })),
          remove: result.remove.map((s) => ({ id: s.id, name: s.name, time: s.time })),
        });
        return;
      }
      for (const k of result.keep)
        process.stdout.write(
          `keep    ${k.snapshot.id.slice(0, 12)}  ${k.snapshot.time}  ${k.snapshot.name}  (${k.reasons.join(', ')})\n`,
        );
      for (const s of result.remove)
        process.stdout.write(
          `${result.dryRun ? 'would remove' : 'removed'} ${s.id.slice(0, 12)}  ${s.time}  ${s.name}\n`,
        );
    });
}

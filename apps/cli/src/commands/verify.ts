import { CorruptError } from '@diskube/core';
import { verifyBackup } from '@diskube/format';
import { discoverChain } from '@diskube/restore';
import type { Command } from 'commander';
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
      // Verify the named file first: a damaged header must be reported, not hidden by chain lookup.
      const reports = [{ path: backup, report: await verifyBackup(backup) }];
      if (reports[0]!.report.ok) {
        // Opening the chain already checked each ancestor's header, footer and sections; verify
        // their frames through the same readers instead of opening every file a second time.
        const chain = await discoverChain(backup);
        try {
          for (const reader of chain.slice(0, -1).reverse()) {
            reports.push({ path: reader.path, report: await reader.verify() });
          }
        } finally {
          for (const reader of chain) await reader.close();
        }
      }
      const ok = reports.every((r) => r.report.ok);
      if (options.json) printJson({ ok, backups: reports });
      else {
        for (const { path, report } of reports) {
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
      if (!ok) {
        const bad = reports.find((r) => !r.report.ok)!;
        const first = bad.report.problems[0];
        throw new CorruptError(`${bad.path} is damaged`, {
          structure: first?.structure,
          offset: first?.offset,
          reason: first?.reason ?? 'verify',
        });
      }
    });
}

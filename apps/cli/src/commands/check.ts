import type { Command } from 'commander';
import { CorruptError } from 'diskube';
import { inspectImageFile } from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { printWarning } from '../warnings.js';

interface CheckOptions {
  json?: boolean;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description(
      "Prove the used map: walk every filesystem's own references (inodes, MFT records) and report blocks they reference that the allocation map calls free.",
    )
    .argument('<image>', 'filesystem image or whole disk')
    .option('--json', 'print a JSON report')
    .action(async (image: string, options: CheckOptions) => {
      const inspection = await inspectImageFile(image, { crossCheck: true });
      inspection.warnings.forEach(printWarning);
      const parts = inspection.parts.map((part) => ({
        number: part.number,
        content: part.content,
        crossCheck: part.filesystem?.crossCheck ?? null,
      }));
      const missing = parts.reduce((sum, p) => sum + (p.crossCheck?.missingBlocks ?? 0), 0);
      if (options.json) {
        const checked = parts.filter((p) => p.crossCheck).length;
        printJson({ ok: missing === 0, checked, missingBlocks: missing, parts });
      } else {
        for (const part of parts) {
          const where = part.number === null ? 'image' : `partition ${part.number}`;
          const check = part.crossCheck;
          if (!check) {
            process.stdout.write(
              `${where} (${part.content ?? 'unknown'}): no cross-check for it\n`,
            );
            continue;
          }
          process.stdout.write(
            `${where} (${part.content}): ${check.objects} objects, ${check.referencedBlocks} referenced blocks, ${check.missingBlocks} free in the map${check.missingBlocks ? ' (kept by backups made with --cross-check)' : ''}\n`,
          );
          for (const m of check.missing) {
            process.stdout.write(`  ${m.owner}: ${m.count} block(s) from block ${m.block}\n`);
          }
        }
        const checked = parts.filter((p) => p.crossCheck).length;
        const verdict =
          missing > 0 ? 'INCONSISTENT' : checked === 0 ? 'nothing cross-checked' : 'ok';
        process.stdout.write(
          `${verdict}: ${formatBytes(inspection.usedBytes)} kept of ${formatBytes(inspection.size)}\n`,
        );
      }
      if (missing > 0) {
        // A map that calls referenced blocks free is corrupt metadata: exit 3, like other damage.
        throw new CorruptError(`${missing} referenced blocks are free in the allocation map`, {
          reason: 'referenced-free',
        });
      }
    });
}

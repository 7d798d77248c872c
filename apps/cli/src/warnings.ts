import type { Warning } from 'diskube';

/** Warnings go to stderr in every mode, so stdout stays machine-readable. */
export function printWarning(warning: Warning): void {
  process.stderr.write(`warning: ${warning.message}\n`);
}

import { CommanderError } from 'commander';
import { DiskubeError, type ErrorCode } from 'diskube';

/**
 * Exit codes, stable for scripts:
 * 0 success · 1 unexpected failure · 2 usage error · 3 corrupt input · 4 unsupported input ·
 * 5 filesystem not clean (retry with --full-copy-on-doubt) · 6 I/O error.
 */
export const EXIT_CODES: Record<ErrorCode | 'USAGE' | 'INTERNAL', number> = {
  INTERNAL: 1,
  USAGE: 2,
  INVALID_ARGUMENT: 2,
  CORRUPT: 3,
  UNSUPPORTED: 4,
  DIRTY: 5,
  IO: 6,
};

const HINTS: Partial<Record<ErrorCode, string>> = {
  DIRTY:
    'The allocation maps cannot be trusted in this state. Repair or cleanly unmount the filesystem, or pass --full-copy-on-doubt to copy every block.',
  CORRUPT: 'The image is damaged or not what it claims to be.',
  UNSUPPORTED: 'diskube does not handle this yet.',
};

/** The one place where errors become a message and an exit code. */
export function handleError(error: unknown, stderr: NodeJS.WritableStream): number {
  if (error instanceof CommanderError) {
    // commander has already printed its message.
    return error.exitCode === 0 ? 0 : EXIT_CODES.USAGE;
  }
  if (DiskubeError.isInstance(error)) {
    stderr.write(`diskube: ${error.message}\n`);
    const hint = HINTS[error.code];
    if (hint) stderr.write(`  ${hint}\n`);
    if (process.env.DISKUBE_DEBUG && error.stack) stderr.write(`${error.stack}\n`);
    return EXIT_CODES[error.code] ?? EXIT_CODES.INTERNAL;
  }
  const message = error instanceof Error ? error.message : String(error);
  stderr.write(`diskube: internal error: ${message}\n`);
  if (error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
  return EXIT_CODES.INTERNAL;
}

/**
 * The `reason` values `@diskube/restore` throws, a stable contract (meanings in the README).
 * Errors from reading the backups themselves carry `@diskube/format`'s reasons (`FORMAT_REASONS`);
 * `containerTarget`'s writer errors (`format`, `cluster-size`, `compress`, `state`, `size`) carry
 * `@diskube/container`'s.
 */
export const RESTORE_REASONS = Object.freeze([
  // CORRUPT
  'broken-chain',
  // INVALID_ARGUMENT
  'missing-parent',
  'target-size',
  'needs-zero-unused',
  'needs-reverse',
  'window-mismatch',
  'not-a-file',
  'exists',
  // IO
  'open',
] as const);
export type RestoreReason = (typeof RESTORE_REASONS)[number];

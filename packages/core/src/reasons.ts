/**
 * The `reason` values `@diskube/core` itself throws, and the shared ones every package re-lists.
 * A reason is a stable contract: programs and tests may switch on it; the message text is not.
 * Meanings are documented in the README.
 */
export const CORE_REASONS = Object.freeze([
  // CORRUPT: shared by every parser built on `FieldReader`.
  'truncated',
  'too-large',
  // IO
  'out-of-range',
  'short-read',
  'read-failed',
  'open',
  'closed',
  // INVALID_ARGUMENT
  'bad-range',
  'bad-slice',
] as const);
export type CoreReason = (typeof CORE_REASONS)[number];

/**
 * The reasons every parser shares: `truncated` (the bytes end before the structure does),
 * `too-large` (a value above what can be handled, e.g. a 64-bit field above 2^53 − 1) and
 * `out-of-range` (a pointer or index outside the area it must lie in).
 */
export const SHARED_CORRUPT_REASONS = Object.freeze([
  'truncated',
  'too-large',
  'out-of-range',
] as const);
export type SharedCorruptReason = (typeof SHARED_CORRUPT_REASONS)[number];

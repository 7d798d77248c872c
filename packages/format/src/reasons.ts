/**
 * The `reason` values `@diskube/format` throws, a stable contract (meanings in the README). The
 * shared `truncated`, `too-large` and `out-of-range` are core's (`FieldReader` throws the first
 * two).
 */
export const FORMAT_REASONS = Object.freeze([
  // CORRUPT: the bytes of a backup contradict SPEC.md.
  'truncated',
  'too-large',
  'out-of-range',
  'length-mismatch',
  'bad-magic',
  'checksum',
  'reserved',
  'bad-kind',
  'bad-flags',
  'bad-geometry',
  'bad-parent-id',
  'bad-string',
  'bad-meta',
  'bad-layout',
  'bad-section',
  'bad-offset',
  'bad-count',
  'bad-encoding',
  'bad-method',
  'bad-run',
  'bad-varint',
  'padding',
  'id-mismatch',
  'inconsistent',
  'decompress',
  'digest',
  'broken-chain',
  // UNSUPPORTED: a valid backup this version does not read.
  'version',
  'incompat-flags',
  'compression',
  'digest-algorithm',
  'string-too-long',
  // INVALID_ARGUMENT: the caller's mistake (also `bad-geometry`, for writer options).
  'empty-chain',
  'incomplete-chain',
  'geometry-mismatch',
  'bad-changed-ranges',
  'bad-block',
  'bad-frame',
  'not-in-backup',
  'exists',
  'internal',
  // IO
  'open',
  'write',
] as const);
export type FormatReason = (typeof FORMAT_REASONS)[number];

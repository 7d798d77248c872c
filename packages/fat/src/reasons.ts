/**
 * The `reason` values and warning codes `@diskube/fat` uses, a stable contract (meanings in the
 * README). `truncated` is core's shared reason, thrown by `FieldReader` and by the driver.
 */
export const FAT_REASONS = Object.freeze([
  // CORRUPT: the boot sector (BPB).
  'truncated',
  'bad-signature',
  'bad-media',
  'bad-sector-size',
  'bad-cluster-size',
  'bad-reserved',
  'bad-fat-count',
  'bad-total-sectors',
  'bad-fat-size',
  'bad-root-entries',
  'bad-root-cluster',
  'out-of-range',
  // CORRUPT: the FAT, and directory entries met by the cross-check walk.
  'bad-cluster-link',
  'bad-start-cluster',
  // UNSUPPORTED
  'fat-type-mismatch',
  'version',
  // DIRTY
  'not-clean',
  'volume-dirty',
] as const);
export type FatReason = (typeof FAT_REASONS)[number];

export const FAT_WARNINGS = Object.freeze([
  'assumed-used',
  'fat-copies-differ',
  'hard-errors',
  'bad-fsinfo',
  'referenced-free',
] as const);
export type FatWarning = (typeof FAT_WARNINGS)[number];

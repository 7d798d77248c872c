/**
 * The `reason` values and warning codes `@diskube/ext` uses, a stable contract (meanings in the
 * README). `truncated` and `too-large` are core's shared reasons.
 */
export const EXT_REASONS = Object.freeze([
  // CORRUPT: the superblock.
  'truncated',
  'bad-magic',
  'bad-block-size',
  'bad-cluster-size',
  'bad-group-size',
  'bad-inodes-per-group',
  'bad-inode-size',
  'bad-first-data-block',
  'bad-block-count',
  'bad-desc-size',
  'bad-reserved-gdt',
  'bad-inode-count',
  'bad-first-meta-bg',
  // CORRUPT: group descriptors, bitmaps, MMP.
  'bad-location',
  'checksum',
  'overlap',
  'free-count',
  // UNSUPPORTED
  'revision',
  'checksum-type',
  'too-large',
  'unknown-feature',
  'journal-device',
  // DIRTY
  'needs-recovery',
  'not-clean',
  'errors',
  'mmp-in-use',
] as const);
export type ExtReason = (typeof EXT_REASONS)[number];

export const EXT_WARNINGS = Object.freeze([
  'assumed-used',
  'bitmap-checksum',
  'free-count',
  'referenced-free',
  'tail-after-filesystem',
] as const);
export type ExtWarning = (typeof EXT_WARNINGS)[number];

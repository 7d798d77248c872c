/**
 * The `reason` values and warning codes `@diskube/xfs` uses, a stable contract (meanings in the
 * README). `truncated`, `too-large` and `out-of-range` are core's shared reasons.
 */
export const XFS_REASONS = Object.freeze([
  // CORRUPT: shared.
  'truncated',
  'too-large',
  'out-of-range',
  // CORRUPT: the superblock.
  'bad-magic',
  'bad-block-size',
  'bad-sector-size',
  'bad-inode-size',
  'bad-ag-geometry',
  'bad-block-count',
  'in-progress',
  'checksum',
  'bad-log-location',
  // CORRUPT: AG headers and the free-space btree.
  'bad-version',
  'bad-uuid',
  'bad-seqno',
  'bad-length',
  'bad-level',
  'bad-numrecs',
  'bad-sibling',
  'bad-key-order',
  'bad-location',
  'btree-loop',
  'too-many-nodes',
  'free-count',
  'btree-mismatch',
  'overlap',
  // CORRUPT: the log.
  'bad-log',
  'bad-log-record',
  // UNSUPPORTED
  'unknown-feature',
  'realtime',
  // DIRTY
  'needs-repair',
  'log-dirty',
] as const);
export type XfsReason = (typeof XFS_REASONS)[number];

export const XFS_WARNINGS = Object.freeze([
  'assumed-used',
  'tail-after-filesystem',
  'external-log',
  'agfl-needs-reset',
] as const);
export type XfsWarning = (typeof XFS_WARNINGS)[number];

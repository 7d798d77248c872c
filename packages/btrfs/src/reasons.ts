/**
 * The `reason` values and warning codes `@diskube/btrfs` uses, a stable contract (meanings in the
 * README). `truncated`, `too-large` and `out-of-range` are core's shared reasons.
 */
export const BTRFS_REASONS = Object.freeze([
  // CORRUPT: shared.
  'truncated',
  'too-large',
  'out-of-range',
  // CORRUPT: the superblock.
  'bad-magic',
  'checksum',
  'bad-bytenr',
  'bad-sector-size',
  'bad-node-size',
  'bad-total-bytes',
  'bad-sys-array',
  // CORRUPT: chunks.
  'bad-chunk',
  'chunk-overlap',
  'unmapped',
  // CORRUPT: tree nodes.
  'bad-fsid',
  'bad-level',
  'bad-nritems',
  'bad-item',
  'bad-key-order',
  'bad-generation',
  'tree-loop',
  'too-many-nodes',
  // CORRUPT: the extent tree.
  'no-extent-root',
  'bad-extent',
  'overlap',
  // UNSUPPORTED
  'unknown-feature',
  'csum-type',
  'profile',
  'multi-device',
  // DIRTY
  'log-tree',
] as const);
export type BtrfsReason = (typeof BTRFS_REASONS)[number];

export const BTRFS_WARNINGS = Object.freeze([
  'assumed-used',
  'tail-after-filesystem',
  'bad-copy',
] as const);
export type BtrfsWarning = (typeof BTRFS_WARNINGS)[number];

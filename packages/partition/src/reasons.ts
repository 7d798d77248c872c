/**
 * The `reason` values and warning codes `@diskube/partition` uses, a stable contract (meanings in
 * the README). `truncated` and `too-large` are core's shared reasons. A disk map also passes on
 * the warnings of the filesystem drivers it ran (`EXT_WARNINGS`, `NTFS_WARNINGS`, …).
 */
export const PARTITION_REASONS = Object.freeze([
  // CORRUPT: MBR and EBR chain.
  'truncated',
  'bad-signature',
  'ebr-loop',
  'ebr-chain-too-long',
  'ebr-out-of-range',
  'logical-out-of-range',
  // CORRUPT: MBR, EBR or GPT.
  'partition-truncated',
  // CORRUPT: GPT.
  'missing',
  'header-size',
  'checksum',
  'entry-size',
  'too-large',
  'entry-range',
  'entries-out-of-range',
  'entry-out-of-range',
] as const);
export type PartitionReason = (typeof PARTITION_REASONS)[number];

export const PARTITION_WARNINGS = Object.freeze([
  // The partition table.
  'gpt-primary-damaged',
  'gpt-backup-missing',
  'partition-overlap',
  'ebr-entry-ignored',
  // The disk map.
  'unrecognised-disk',
  'unknown-partition',
  'unknown-volume',
  'swap-hibernation',
  'filesystem-unsupported',
  'assumed-used',
] as const);
export type PartitionWarning = (typeof PARTITION_WARNINGS)[number];

/**
 * The `reason` values and warning codes `@diskube/ntfs` uses, a stable contract (meanings in the
 * README). `truncated`, `too-large` and `out-of-range` are core's shared reasons.
 */
export const NTFS_REASONS = Object.freeze([
  // CORRUPT: shared.
  'truncated',
  'too-large',
  'out-of-range',
  'length-mismatch',
  // CORRUPT: boot sector.
  'bad-magic',
  'bad-sector-size',
  'bad-cluster-size',
  'bad-record-size',
  'bad-size',
  // CORRUPT: records, attributes, runlists, indexes.
  'fixup',
  'bad-offset',
  'bad-flag',
  'bad-vcn',
  'bad-runlist',
  'run-outside-volume',
  'bad-record',
  'record-out-of-range',
  'bad-attribute',
  'attribute-list',
  'attribute-list-loop',
  'mft-extension-unreachable',
  'bad-mft',
  'bad-bitmap',
  'bitmap-contradicted',
  'cross-linked',
  'bad-index',
  'bad-volume',
  'bad-version',
  'logfile',
  // UNSUPPORTED
  'cluster-size',
  'compressed',
  'encrypted',
  'compressed-system-file',
  'encrypted-system-file',
  'sparse-system-file',
  // DIRTY
  'dirty',
  'logfile-unclean',
  'hibernated',
] as const);
export type NtfsReason = (typeof NTFS_REASONS)[number];

export const NTFS_WARNINGS = Object.freeze([
  'assumed-used',
  'backup-boot-sector-invalid',
  'backup-boot-sector-missing',
  'bad-clusters',
  'referenced-free',
  'tail-after-filesystem',
] as const);
export type NtfsWarning = (typeof NTFS_WARNINGS)[number];

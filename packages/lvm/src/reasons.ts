/**
 * The `reason` values and warning codes `@diskube/lvm` uses, a stable contract (meanings in the
 * README). `truncated`, `too-large` and `out-of-range` are core's shared reasons.
 */
export const LVM_REASONS = Object.freeze([
  // CORRUPT: shared.
  'truncated',
  'too-large',
  'out-of-range',
  // CORRUPT: the label and the PV header.
  'bad-label-sector',
  'checksum',
  'bad-label-offset',
  'bad-locations',
  // CORRUPT: the metadata area.
  'bad-mda-magic',
  'bad-mda-version',
  'bad-mda-location',
  'metadata-checksum',
  // CORRUPT: the metadata text.
  'bad-syntax',
  'bad-value',
  'missing-field',
  'pv-not-in-vg',
  'bad-extent-geometry',
  'bad-segment',
  'overlap',
  // UNSUPPORTED
  'unknown-format',
  'no-metadata',
] as const);
export type LvmReason = (typeof LVM_REASONS)[number];

export const LVM_WARNINGS = Object.freeze([
  /** An LV with a segment type not mapped exactly (thin, cache, raid, mirror, snapshot): kept whole. */
  'lv-kept-whole',
  /** An LV with extents on a PV outside this disk: its extents here are kept whole. */
  'lv-outside-disk',
  /** A metadata area whose copy is older or unreadable: the newest good copy is used. */
  'stale-metadata',
] as const);
export type LvmWarning = (typeof LVM_WARNINGS)[number];

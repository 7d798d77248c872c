/**
 * The `reason` values `@diskube/container` throws, a stable contract (meanings in the README).
 * `truncated`, `too-large` and `out-of-range` are the reasons every parser shares (core's
 * `SHARED_CORRUPT_REASONS`; `FieldReader` throws the first two). A reason names the kind of
 * defect; the error's `structure` and `offset` say where.
 */
export const CONTAINER_REASONS = Object.freeze([
  // CORRUPT: the container's bytes contradict its format.
  'truncated',
  'too-large',
  'out-of-range',
  'bad-magic',
  'checksum',
  'reserved',
  'unaligned',
  'overlap',
  'missing',
  'bad-geometry',
  'table-too-small',
  'bad-header-length',
  'bad-header-extension',
  'bad-backing-file',
  'bad-block-state',
  'bad-marker',
  'bad-compressed-data',
  'disk-type',
  'extent-size',
  'marked-corrupt',
  'parent-mismatch',
  'parent-loop',
  // UNSUPPORTED: a valid container this version does not read.
  'backing-file',
  'external-data-file',
  'needs-extent-file',
  'version',
  'subformat',
  'incompatible-feature',
  'encrypted',
  'compression-type',
  // IO: a file the container names cannot be opened.
  'missing-parent',
  // DIRTY: writes may be pending outside the tables, or a dirty bitmap was not saved cleanly.
  'vhdx-log',
  'bitmap-untrusted',
  // INVALID_ARGUMENT: the caller's mistake (writer options and calls).
  'format',
  'cluster-size',
  'compress',
  'backing',
  'size',
  'state',
  'internal',
] as const);
export type ContainerReason = (typeof CONTAINER_REASONS)[number];

/** Warning codes `@diskube/container` emits: none (every doubt is an error). */
export const CONTAINER_WARNINGS = Object.freeze([] as const);
export type ContainerWarning = (typeof CONTAINER_WARNINGS)[number];

/**
 * The `reason` values `@diskube/repository` uses, a stable contract (meanings in SPEC.md).
 * `truncated` and `too-large` are core's shared reasons (thrown by `FieldReader`).
 */
export const REPOSITORY_REASONS = Object.freeze([
  // CORRUPT: shared.
  'truncated',
  'too-large',
  // CORRUPT: objects (chunks, index objects, used maps, manifests, the config).
  'bad-magic',
  'bad-type',
  'bad-method',
  'bad-length',
  'decompress',
  'chunk-digest',
  'bad-patch',
  'object-digest',
  'bad-config',
  'bad-manifest',
  // UNSUPPORTED
  'repository-version',
  // IO
  'not-found',
  'locked',
  'lock-lost',
  'exists',
  'no-repository',
  'read-failed',
  'write-failed',
  // INVALID_ARGUMENT
  'bad-key',
  'usage',
  'bad-chunk-size',
  'no-snapshot',
] as const);
export type RepositoryReason = (typeof REPOSITORY_REASONS)[number];

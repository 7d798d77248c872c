/**
 * Typed errors shared by every diskube package.
 *
 * Each error carries a stable `code` (what a program switches on), and where it applies the
 * on-disk `structure` it was reading and the byte `offset` of that structure in the source.
 * Tests assert `code` (and `reason` for finer cases), never the message text.
 *
 * `isInstance` works across duplicate copies of this package (two versions installed side by
 * side), because it checks a registered symbol rather than the prototype chain. Each class has
 * its own symbol, so `CorruptError.isInstance(x)` is true only for corrupt errors, while
 * `DiskubeError.isInstance(x)` is true for all of them.
 */

const MARKER = Symbol.for('diskube.error');
const CORRUPT = Symbol.for('diskube.error.CORRUPT');
const UNSUPPORTED = Symbol.for('diskube.error.UNSUPPORTED');
const DIRTY = Symbol.for('diskube.error.DIRTY');
const IO = Symbol.for('diskube.error.IO');
const INVALID_ARGUMENT = Symbol.for('diskube.error.INVALID_ARGUMENT');

function marked(value: unknown, marker: symbol): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[marker] === true
  );
}

export type ErrorCode =
  /** On-disk data contradicts the format: bad magic, checksum mismatch, pointer out of range. */
  | 'CORRUPT'
  /** Valid data this library does not handle: an unknown INCOMPAT feature, an external journal. */
  | 'UNSUPPORTED'
  /** The filesystem is not in a state whose allocation maps can be trusted (journal pending, not clean, hibernated). */
  | 'DIRTY'
  /** The source could not return the bytes asked for: short read, read past the end, OS error. */
  | 'IO'
  /** The caller passed something invalid (a negative offset, a zero-length source where one is needed). */
  | 'INVALID_ARGUMENT';

export interface ErrorContext {
  /** Name of the on-disk structure, e.g. `ext4 superblock`, `NTFS boot sector`. */
  structure?: string;
  /** Byte offset of that structure (or of the bad field) within the source. */
  offset?: number;
  /** Finer, still stable, reason such as `bad-magic` or `checksum`. */
  reason?: string;
  cause?: unknown;
}

export class DiskubeError extends Error {
  readonly [MARKER] = true;
  readonly code: ErrorCode;
  readonly structure: string | undefined;
  readonly offset: number | undefined;
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    const where =
      context.structure !== undefined
        ? ` (${context.structure}${context.offset !== undefined ? ` at byte ${context.offset}` : ''})`
        : context.offset !== undefined
          ? ` (at byte ${context.offset})`
          : '';
    super(message + where, context.cause !== undefined ? { cause: context.cause } : undefined);
    this.name = 'DiskubeError';
    this.code = code;
    this.structure = context.structure;
    this.offset = context.offset;
    this.reason = context.reason;
  }

  /** True for every diskube error, including those made by another copy of this package. */
  static isInstance(value: unknown): value is DiskubeError {
    return marked(value, MARKER);
  }
}

/** On-disk data contradicts the format. */
export class CorruptError extends DiskubeError {
  readonly [CORRUPT] = true;

  /** True only for this class (across package copies); siblings do not match. */
  static override isInstance(value: unknown): value is CorruptError {
    return marked(value, CORRUPT);
  }

  constructor(message: string, context: ErrorContext = {}) {
    super('CORRUPT', message, context);
    this.name = 'CorruptError';
  }
}

/** Valid data that this library does not (yet) handle. */
export class UnsupportedError extends DiskubeError {
  readonly [UNSUPPORTED] = true;

  /** True only for this class (across package copies); siblings do not match. */
  static override isInstance(value: unknown): value is UnsupportedError {
    return marked(value, UNSUPPORTED);
  }

  constructor(message: string, context: ErrorContext = {}) {
    super('UNSUPPORTED', message, context);
    this.name = 'UnsupportedError';
  }
}

/** The filesystem's allocation maps cannot be trusted in its current state. */
export class DirtyFilesystemError extends DiskubeError {
  readonly [DIRTY] = true;

  /** True only for this class (across package copies); siblings do not match. */
  static override isInstance(value: unknown): value is DirtyFilesystemError {
    return marked(value, DIRTY);
  }

  constructor(message: string, context: ErrorContext = {}) {
    super('DIRTY', message, context);
    this.name = 'DirtyFilesystemError';
  }
}

/** The source failed to deliver exactly the bytes asked for. */
export class IoError extends DiskubeError {
  readonly [IO] = true;

  /** True only for this class (across package copies); siblings do not match. */
  static override isInstance(value: unknown): value is IoError {
    return marked(value, IO);
  }

  constructor(message: string, context: ErrorContext = {}) {
    super('IO', message, context);
    this.name = 'IoError';
  }
}

/** The caller passed an invalid argument. */
export class InvalidArgumentError extends DiskubeError {
  readonly [INVALID_ARGUMENT] = true;

  /** True only for this class (across package copies); siblings do not match. */
  static override isInstance(value: unknown): value is InvalidArgumentError {
    return marked(value, INVALID_ARGUMENT);
  }

  constructor(message: string, context: ErrorContext = {}) {
    super('INVALID_ARGUMENT', message, context);
    this.name = 'InvalidArgumentError';
  }
}

/** True when `value` is a diskube error with the given code (works across package copies). */
export function hasErrorCode(value: unknown, code: ErrorCode): value is DiskubeError {
  return DiskubeError.isInstance(value) && value.code === code;
}

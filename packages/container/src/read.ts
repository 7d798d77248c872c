import { type BlockSource, CorruptError, hasErrorCode, type IoError } from '@diskube/core';

/** Largest metadata table we will read into memory at once (L1, BAT, block map, grain directory). */
export const MAX_TABLE_BYTES = 64 * 1024 * 1024;

/**
 * Read `length` bytes of `structure` at `offset` from the container file. A structure that does
 * not fit the file (a pointer or size from disk leading outside it) is a `CorruptError`; a
 * structure larger than `limit` is refused before anything is allocated.
 */
export async function readStructure(
  file: BlockSource,
  offset: number,
  length: number,
  structure: string,
  limit = MAX_TABLE_BYTES,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(length) || length < 0 || length > limit) {
    throw new CorruptError(`${structure} claims ${length} bytes (limit ${limit})`, {
      structure,
      offset,
      reason: 'too-large',
    });
  }
  checkInFile(file.size, offset, length, structure);
  const dst = new Uint8Array(length);
  try {
    await file.read(offset, dst);
  } catch (cause) {
    throw asCorrupt(cause, structure, offset);
  }
  return dst;
}

/** Throw a `CorruptError` unless `[offset, offset + length)` lies inside the file. */
export function checkInFile(
  fileSize: number,
  offset: number,
  length: number,
  structure: string,
): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(offset + length) ||
    offset < 0 ||
    offset + length > fileSize
  ) {
    throw new CorruptError(
      `${structure} of ${length} bytes at ${offset} lies outside the ${fileSize}-byte file`,
      { structure, offset, reason: 'out-of-range' },
    );
  }
}

/**
 * A read of the container file that failed because the file is shorter than its metadata says
 * (core's IO `out-of-range`) is the container's corruption; any other error passes unchanged.
 */
export function asCorrupt(cause: unknown, structure: string, offset: number): unknown {
  if (hasErrorCode(cause, 'IO') && (cause as IoError).reason === 'out-of-range') {
    return new CorruptError(`${structure} at ${offset} lies outside the file`, {
      structure,
      offset,
      reason: 'out-of-range',
      cause,
    });
  }
  return cause;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

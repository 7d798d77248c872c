import { type BlockSource, CorruptError, hasErrorCode, type IoError } from '@diskube/core';

/**
 * Bounds-checked field access over one on-disk structure. Every read names the structure and
 * the absolute byte offset of the field in the container, so a short buffer is a `CorruptError`
 * and never a bare `RangeError`.
 */
export class Fields {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    /** Name of the structure, e.g. `qcow2 header`. */
    readonly structure: string,
    /** Byte offset of `bytes[0]` in the container file. */
    readonly base = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private check(offset: number, length: number): void {
    if (offset < 0 || offset + length > this.bytes.length) {
      throw new CorruptError(`${this.structure} is too short for a field at +${offset}`, {
        structure: this.structure,
        offset: this.base + offset,
        reason: 'truncated',
      });
    }
  }

  u8(offset: number): number {
    this.check(offset, 1);
    return this.view.getUint8(offset);
  }
  u16le(offset: number): number {
    this.check(offset, 2);
    return this.view.getUint16(offset, true);
  }
  u16be(offset: number): number {
    this.check(offset, 2);
    return this.view.getUint16(offset, false);
  }
  u32le(offset: number): number {
    this.check(offset, 4);
    return this.view.getUint32(offset, true);
  }
  u32be(offset: number): number {
    this.check(offset, 4);
    return this.view.getUint32(offset, false);
  }
  /** A 64-bit field as a bigint (for sentinels like all-ones). */
  u64leBig(offset: number): bigint {
    this.check(offset, 8);
    return this.view.getBigUint64(offset, true);
  }
  u64beBig(offset: number): bigint {
    this.check(offset, 8);
    return this.view.getBigUint64(offset, false);
  }
  /** A 64-bit field that must fit a safe integer; larger values are corrupt. */
  u64le(offset: number, field: string): number {
    return this.safe(this.u64leBig(offset), offset, field);
  }
  u64be(offset: number, field: string): number {
    return this.safe(this.u64beBig(offset), offset, field);
  }
  private safe(value: bigint, offset: number, field: string): number {
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CorruptError(`${this.structure} field ${field} is too large (${value})`, {
        structure: this.structure,
        offset: this.base + offset,
        reason: 'too-large',
      });
    }
    return Number(value);
  }
  slice(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
  ascii(offset: number, length: number): string {
    return String.fromCharCode(...this.slice(offset, length));
  }
  /** A mixed-endian GUID (Microsoft layout) as the usual lower-case text. */
  guid(offset: number): string {
    const b = this.slice(offset, 16);
    const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
    return (
      `${h(3)}${h(2)}${h(1)}${h(0)}-${h(5)}${h(4)}-${h(7)}${h(6)}-${h(8)}${h(9)}-` +
      `${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`
    );
  }
  corrupt(message: string, offset: number, reason: string): CorruptError {
    return new CorruptError(message, {
      structure: this.structure,
      offset: this.base + offset,
      reason,
    });
  }
}

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
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > file.size) {
    throw new CorruptError(
      `${structure} of ${length} bytes at ${offset} lies outside the ${file.size}-byte file`,
      { structure, offset, reason: 'out-of-file' },
    );
  }
  const dst = new Uint8Array(length);
  try {
    await file.read(offset, dst);
  } catch (cause) {
    if (hasErrorCode(cause, 'IO') && (cause as IoError).reason === 'out-of-range') {
      throw new CorruptError(`${structure} at ${offset} lies outside the file`, {
        structure,
        offset,
        reason: 'out-of-file',
        cause,
      });
    }
    throw cause;
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
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > fileSize) {
    throw new CorruptError(
      `${structure} of ${length} bytes at ${offset} lies outside the ${fileSize}-byte file`,
      { structure, offset, reason: 'out-of-file' },
    );
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

import { CorruptError, InvalidArgumentError } from './errors.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

/**
 * Bounds-checked field access over the bytes of one on-disk structure, little- and big-endian.
 *
 * A parser checks the length once (`need`), then reads each field at its offset within the
 * structure (`at`). Every read is still checked: a read past the end is a `CorruptError` with
 * reason `truncated`, naming the structure and the absolute byte offset of the field in the
 * source (`offset + at`), never a bare `RangeError` or `undefined`. A 64-bit field read as a
 * number must fit a safe integer (2^53 − 1); a larger value is a `CorruptError` with reason
 * `too-large` (the `…Big` variants return a bigint instead, for sentinels such as all-ones).
 *
 * `R` narrows the `reason` accepted by `corrupt`, so a package can type it as its reason union.
 */
export class FieldReader<R extends string = string> {
  private readonly view: DataView;

  constructor(
    /** The structure's bytes; reads are relative to `bytes[0]`. Not copied. */
    readonly bytes: Uint8Array,
    /** Name of the structure, for errors, e.g. `ext4 superblock`. */
    readonly structure: string,
    /** Absolute byte offset of `bytes[0]` in the source, for errors. */
    readonly offset = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Number of bytes available. */
  get length(): number {
    return this.bytes.length;
  }

  /** True when `[at, at + length)` lies inside the bytes. */
  has(at: number, length: number): boolean {
    return (
      Number.isSafeInteger(at) &&
      Number.isSafeInteger(length) &&
      at >= 0 &&
      length >= 0 &&
      at + length <= this.bytes.length
    );
  }

  /** Throw `truncated` (at the structure's offset) unless at least `length` bytes are present. */
  need(length: number): this {
    if (!this.has(0, length)) {
      throw new CorruptError(
        `${this.structure} needs ${length} bytes, only ${this.bytes.length} available`,
        { structure: this.structure, offset: this.offset, reason: 'truncated' },
      );
    }
    return this;
  }

  private check(at: number, length: number): void {
    if (!this.has(at, length)) {
      throw new CorruptError(
        `${this.structure} is too short for a ${length}-byte field at +0x${at.toString(16)} (${this.bytes.length} bytes)`,
        { structure: this.structure, offset: this.offset + at, reason: 'truncated' },
      );
    }
  }

  private safe(value: bigint, at: number, field: string | undefined): number {
    if (value > MAX_SAFE || value < MIN_SAFE) {
      const name = field ?? `at +0x${at.toString(16)}`;
      throw new CorruptError(`${this.structure} field ${name} is too large (${value})`, {
        structure: this.structure,
        offset: this.offset + at,
        reason: 'too-large',
      });
    }
    return Number(value);
  }

  u8(at: number): number {
    this.check(at, 1);
    return this.view.getUint8(at);
  }
  i8(at: number): number {
    this.check(at, 1);
    return this.view.getInt8(at);
  }

  u16le(at: number): number {
    this.check(at, 2);
    return this.view.getUint16(at, true);
  }
  i16le(at: number): number {
    this.check(at, 2);
    return this.view.getInt16(at, true);
  }
  u32le(at: number): number {
    this.check(at, 4);
    return this.view.getUint32(at, true);
  }
  i32le(at: number): number {
    this.check(at, 4);
    return this.view.getInt32(at, true);
  }
  /** An unsigned 64-bit field that must fit a safe integer; `field` names it in the error. */
  u64le(at: number, field?: string): number {
    return this.safe(this.u64leBig(at), at, field);
  }
  /** A signed 64-bit field that must fit a safe integer; `field` names it in the error. */
  i64le(at: number, field?: string): number {
    return this.safe(this.i64leBig(at), at, field);
  }
  u64leBig(at: number): bigint {
    this.check(at, 8);
    return this.view.getBigUint64(at, true);
  }
  i64leBig(at: number): bigint {
    this.check(at, 8);
    return this.view.getBigInt64(at, true);
  }

  u16be(at: number): number {
    this.check(at, 2);
    return this.view.getUint16(at, false);
  }
  i16be(at: number): number {
    this.check(at, 2);
    return this.view.getInt16(at, false);
  }
  u32be(at: number): number {
    this.check(at, 4);
    return this.view.getUint32(at, false);
  }
  i32be(at: number): number {
    this.check(at, 4);
    return this.view.getInt32(at, false);
  }
  /** An unsigned 64-bit big-endian field that must fit a safe integer. */
  u64be(at: number, field?: string): number {
    return this.safe(this.u64beBig(at), at, field);
  }
  /** A signed 64-bit big-endian field that must fit a safe integer. */
  i64be(at: number, field?: string): number {
    return this.safe(this.i64beBig(at), at, field);
  }
  u64beBig(at: number): bigint {
    this.check(at, 8);
    return this.view.getBigUint64(at, false);
  }
  i64beBig(at: number): bigint {
    this.check(at, 8);
    return this.view.getBigInt64(at, false);
  }

  /** An unsigned little-endian integer of `size` bytes (0 to 8), e.g. an NTFS run length field. */
  uintLeBig(at: number, size: number): bigint {
    if (!Number.isInteger(size) || size < 0 || size > 8) {
      // The width comes from the parser (already checked), so this is a caller mistake.
      throw new InvalidArgumentError(`integer width ${size} is not 0 to 8 bytes`, {
        reason: 'bad-range',
      });
    }
    this.check(at, size);
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.bytes[at + i]!);
    return value;
  }
  /** A two's-complement little-endian integer of `size` bytes (0 to 8), e.g. an NTFS LCN delta. */
  intLeBig(at: number, size: number): bigint {
    const value = this.uintLeBig(at, size);
    return size > 0 && (this.bytes[at + size - 1]! & 0x80) !== 0
      ? value - (1n << BigInt(size * 8))
      : value;
  }

  /** `length` bytes at `at`, as a view into the same memory (not a copy). */
  slice(at: number, length: number): Uint8Array {
    this.check(at, length);
    return this.bytes.subarray(at, at + length);
  }

  /** A reader over `[at, at + length)`, for a nested structure; offsets stay absolute. */
  sub(at: number, length: number, structure = this.structure): FieldReader<R> {
    return new FieldReader<R>(this.slice(at, length), structure, this.offset + at);
  }

  /** `length` bytes as Latin-1 text, one character per byte (signatures, fixed-width names). */
  ascii(at: number, length: number): string {
    const bytes = this.slice(at, length);
    let text = '';
    for (const byte of bytes) text += String.fromCharCode(byte);
    return text;
  }

  /** `units` UTF-16LE code units as a string; lone surrogates are kept as they are. */
  utf16le(at: number, units: number): string {
    this.check(at, units * 2);
    let text = '';
    // Slices of 4096 keep String.fromCharCode's argument list short for long names.
    for (let i = 0; i < units; i += 4096) {
      const chunk: number[] = [];
      for (let j = i; j < Math.min(units, i + 4096); j++) {
        chunk.push(this.view.getUint16(at + j * 2, true));
      }
      text += String.fromCharCode(...chunk);
    }
    return text;
  }

  /** A 16-byte GUID in Microsoft's mixed-endian layout (GPT, VHDX, NTFS) as lower-case text. */
  guid(at: number): string {
    const b = this.slice(at, 16);
    const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
    return (
      `${h(3)}${h(2)}${h(1)}${h(0)}-${h(5)}${h(4)}-${h(7)}${h(6)}-${h(8)}${h(9)}-` +
      `${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`
    );
  }

  /** A `CorruptError` about the field at `at` of this structure (absolute offset filled in). */
  corrupt(message: string, at: number, reason: R): CorruptError {
    return new CorruptError(message, {
      structure: this.structure,
      offset: this.offset + at,
      reason,
    });
  }
}

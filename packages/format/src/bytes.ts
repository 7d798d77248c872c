import { CorruptError } from '@diskube/core';

/**
 * Little-endian field access over one structure's bytes. Every read is bounds-checked and a read
 * past the end is a `CorruptError` naming the structure and the absolute file offset, never a
 * bare `RangeError`.
 */
export class FieldReader {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    /** Name of the structure, for errors. */
    readonly structure: string,
    /** Offset of `bytes[0]` in the backup file, for errors. */
    readonly base = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(at: number, length: number): void {
    if (at < 0 || at + length > this.bytes.length) {
      throw new CorruptError(`${this.structure} is too short for a ${length}-byte field`, {
        structure: this.structure,
        offset: this.base + at,
        reason: 'truncated',
      });
    }
  }

  u8(at: number): number {
    this.need(at, 1);
    return this.view.getUint8(at);
  }
  u16(at: number): number {
    this.need(at, 2);
    return this.view.getUint16(at, true);
  }
  i16(at: number): number {
    this.need(at, 2);
    return this.view.getInt16(at, true);
  }
  u32(at: number): number {
    this.need(at, 4);
    return this.view.getUint32(at, true);
  }
  /** A u64 that must fit a safe integer (every size and offset in the format does). */
  u64(at: number): number {
    this.need(at, 8);
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CorruptError(`${this.structure} has a 64-bit field above 2^53`, {
        structure: this.structure,
        offset: this.base + at,
        reason: 'out-of-range',
      });
    }
    return Number(value);
  }
  slice(at: number, length: number): Uint8Array {
    this.need(at, length);
    return this.bytes.subarray(at, at + length);
  }
  corrupt(message: string, at: number, reason: string): CorruptError {
    return new CorruptError(message, { structure: this.structure, offset: this.base + at, reason });
  }
}

/** Little-endian field writes into a fresh buffer (encoders only write what they allocated). */
export class FieldWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(at: number, v: number): void {
    this.view.setUint8(at, v);
  }
  u16(at: number, v: number): void {
    this.view.setUint16(at, v, true);
  }
  i16(at: number, v: number): void {
    this.view.setInt16(at, v, true);
  }
  u32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }
  u64(at: number, v: number): void {
    this.view.setBigUint64(at, BigInt(v), true);
  }
  set(at: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, at);
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

import { CorruptError } from '@diskube/core';

/**
 * Little-endian field readers shared by the structure parsers. Each parser checks its length
 * once with `need` and then reads fields at fixed offsets; these helpers still bound-check so a
 * mistake in a parser surfaces as a `CorruptError`, never as a bare `RangeError` or `undefined`.
 */

/** Throw a `CorruptError` unless `bytes` holds at least `end` bytes. */
export function need(bytes: Uint8Array, end: number, structure: string, at: number): void {
  if (end > bytes.length) {
    throw new CorruptError(`${structure} needs ${end} bytes, only ${bytes.length} available`, {
      structure,
      offset: at,
      reason: 'truncated',
    });
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function u8(bytes: Uint8Array, off: number, structure: string, at: number): number {
  need(bytes, off + 1, structure, at);
  return bytes[off]!;
}

export function i8(bytes: Uint8Array, off: number, structure: string, at: number): number {
  const v = u8(bytes, off, structure, at);
  return v >= 0x80 ? v - 0x100 : v;
}

export function u16(bytes: Uint8Array, off: number, structure: string, at: number): number {
  need(bytes, off + 2, structure, at);
  return view(bytes).getUint16(off, true);
}

export function u32(bytes: Uint8Array, off: number, structure: string, at: number): number {
  need(bytes, off + 4, structure, at);
  return view(bytes).getUint32(off, true);
}

/** An unsigned 64-bit field that must fit a JavaScript safe integer (2^53 − 1). */
export function u64(bytes: Uint8Array, off: number, structure: string, at: number): number {
  need(bytes, off + 8, structure, at);
  const v = view(bytes).getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CorruptError(`${structure}: 64-bit field at +0x${off.toString(16)} is too large`, {
      structure,
      offset: at + off,
      reason: 'out-of-range',
    });
  }
  return Number(v);
}

/** A signed 64-bit field that must fit a JavaScript safe integer. */
export function i64(bytes: Uint8Array, off: number, structure: string, at: number): number {
  need(bytes, off + 8, structure, at);
  const v = view(bytes).getBigInt64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new CorruptError(`${structure}: 64-bit field at +0x${off.toString(16)} is out of range`, {
      structure,
      offset: at + off,
      reason: 'out-of-range',
    });
  }
  return Number(v);
}

/** Decode `count` UTF-16LE code units at `off` (lone surrogates are kept as they are). */
export function utf16(
  bytes: Uint8Array,
  off: number,
  count: number,
  structure: string,
  at: number,
): string {
  need(bytes, off + count * 2, structure, at);
  const units: number[] = [];
  const v = view(bytes);
  for (let i = 0; i < count; i++) units.push(v.getUint16(off + i * 2, true));
  let out = '';
  // String.fromCharCode in slices keeps the argument list short for long names.
  for (let i = 0; i < units.length; i += 4096) {
    out += String.fromCharCode(...units.slice(i, i + 4096));
  }
  return out;
}

/** Four ASCII bytes at `off` as a string (record signatures such as `FILE`). */
export function magic(bytes: Uint8Array, off = 0): string {
  let s = '';
  for (let i = off; i < off + 4 && i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * A 64-bit MFT file reference: the low 48 bits are the record number, the high 16 a sequence
 * number. Read in two parts so a large sequence number never trips the 2^53 check.
 */
export function fileReference(
  bytes: Uint8Array,
  off: number,
  structure: string,
  at: number,
): { record: number; sequence: number } {
  const lo = u32(bytes, off, structure, at);
  const mid = u16(bytes, off + 4, structure, at);
  const sequence = u16(bytes, off + 6, structure, at);
  return { record: mid * 2 ** 32 + lo, sequence };
}

import { Bitmap } from '@diskube/bitmap';
import { FieldReader, UnsupportedError } from '@diskube/core';
import type { FormatReason } from './reasons.js';
import { ENCODING_RAW, ENCODING_RLE } from './section.js';

// Sources: SPEC.md §5.1 "Bitmap encodings".
//  - raw (0): ceil(n / 8) bytes, bit i is bit (i % 8) of byte floor(i / 8); padding bits zero.
//  - run-length (1): unsigned LEB128 run lengths alternating clear, set, clear, … starting with a
//    clear run (which may be 0); every later run is ≥ 1 and the runs add up to exactly n.
// The writer stores whichever is shorter (raw on a tie).

/** Longest LEB128 accepted: 8 bytes carry 56 bits, more than any bit count (≤ 2^37). */
const MAX_VARINT_BYTES = 8;

function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function encodeRle(bitmap: Bitmap, limit: number): Uint8Array | null {
  const out: number[] = [];
  let pos = 0;
  for (const [start, length] of bitmap.runs()) {
    pushVarint(out, start - pos);
    pushVarint(out, length);
    pos = start + length;
    // Give up early once run-length cannot beat raw.
    if (out.length >= limit) return null;
  }
  if (pos < bitmap.length) pushVarint(out, bitmap.length - pos);
  if (out.length >= limit) return null;
  return Uint8Array.from(out);
}

export function encodeBitmap(bitmap: Bitmap): { encoding: number; payload: Uint8Array } {
  const rawLength = Math.ceil(bitmap.length / 8);
  const rle = encodeRle(bitmap, rawLength);
  if (rle !== null) return { encoding: ENCODING_RLE, payload: rle };
  return { encoding: ENCODING_RAW, payload: bitmap.toBytes() };
}

/** Decode a bitmap of `length` bits; `base` is the payload's file offset for errors. */
export function decodeBitmap(
  payload: Uint8Array,
  encoding: number,
  length: number,
  structure: string,
  base: number,
): Bitmap {
  const r = new FieldReader<FormatReason>(payload, structure, base);
  if (encoding === ENCODING_RAW) {
    const need = Math.ceil(length / 8);
    if (payload.length !== need)
      throw r.corrupt(
        `${structure} has ${payload.length} bytes, expected ${need}`,
        0,
        'length-mismatch',
      );
    const spare = need * 8 - length;
    if (spare > 0 && payload[need - 1]! >> (8 - spare) !== 0) {
      throw r.corrupt(`${structure} has padding bits set`, need - 1, 'padding');
    }
    return Bitmap.fromBytes(payload, length);
  }
  if (encoding !== ENCODING_RLE)
    throw r.corrupt(`${structure} has unknown encoding ${encoding}`, -16 + 4, 'bad-encoding');
  let bitmap: Bitmap;
  try {
    bitmap = new Bitmap(length);
  } catch (cause) {
    throw new UnsupportedError(`${structure} of ${length} bits does not fit in memory`, {
      structure,
      offset: base,
      reason: 'too-large',
      cause,
    });
  }
  let at = 0;
  let pos = 0;
  let set = false;
  let first = true;
  while (at < payload.length) {
    const runAt = at;
    let value = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k >= MAX_VARINT_BYTES)
        throw r.corrupt(`${structure} has an over-long run length`, runAt, 'bad-varint');
      const b = r.u8(at++);
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) break;
    }
    if (value === 0 && !first) throw r.corrupt(`${structure} has an empty run`, runAt, 'bad-run');
    if (value > length - pos)
      throw r.corrupt(`${structure} runs exceed ${length} bits`, runAt, 'bad-run');
    if (set) bitmap.setRange(pos, value);
    pos += value;
    set = !set;
    first = false;
  }
  if (pos !== length)
    throw r.corrupt(`${structure} runs cover ${pos} of ${length} bits`, payload.length, 'bad-run');
  return bitmap;
}

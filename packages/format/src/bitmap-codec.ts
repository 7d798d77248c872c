import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { FormatReason } from './reasons.js';
import { ENCODING_RAW, ENCODING_RLE } from './section.js';

// Sources: SPEC.md §5.1 "Bitmap encodings".
//  - raw (0): ceil(n / 8) bytes, bit i is bit (i % 8) of byte floor(i / 8); padding bits zero.
//  - run-length (1): unsigned LEB128 run lengths alternating clear, set, clear, … starting with a
//    clear run (which may be 0); every later run is ≥ 1 and the runs add up to exactly n.
// The writer stores whichever is shorter (raw on a tie).

/** Longest LEB128 accepted: 8 bytes carry 56 bits, more than any bit count (≤ 2^37). */
export const MAX_VARINT_BYTES = 8;

/** Append `value` as unsigned LEB128. */
export function pushVarint(out: number[], value: number): void {
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

// Streaming forms of the same encodings, one window of bits at a time, so that neither the writer
// nor a reader ever holds a whole bitmap section (a 16 TiB disk of 4 KiB blocks has 2^32 bits).

/** Bytes of encoded runs gathered before they are handed to the spill. */
const RLE_FLUSH_BYTES = 64 << 10;

/**
 * Run-length encodes a bitmap given as consecutive windows into `out`; `finish` says which
 * encoding is shorter. The bytes are those `encodeBitmap` makes of the whole bitmap.
 */
export class RleEncoder {
  private runSet = false;
  private runLength = 0;
  private pending: number[] = [];
  private bits = 0;

  constructor(
    readonly length: number,
    private readonly out: { push(bytes: Uint8Array): Promise<void>; length: number },
  ) {}

  /** Append the next `window.length` bits. */
  async push(window: Bitmap): Promise<void> {
    let at = 0;
    for (const [s, len] of window.runs()) {
      this.extend(false, s - at);
      this.extend(true, len);
      at = s + len;
    }
    this.extend(false, window.length - at);
    this.bits += window.length;
    if (this.pending.length >= RLE_FLUSH_BYTES) await this.flush();
  }

  private extend(set: boolean, count: number): void {
    if (count === 0) return;
    if (set === this.runSet) {
      this.runLength += count;
      return;
    }
    pushVarint(this.pending, this.runLength);
    this.runSet = set;
    this.runLength = count;
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bytes = Uint8Array.from(this.pending);
    this.pending = [];
    await this.out.push(bytes);
  }

  /** Close the last run; the section's encoding: RLE when strictly shorter than raw. */
  async finish(): Promise<{ encoding: number; payloadLength: number }> {
    if (this.bits !== this.length)
      throw new Error(`RleEncoder: ${this.bits} of ${this.length} bits pushed`);
    if (this.runLength > 0) pushVarint(this.pending, this.runLength);
    this.runLength = 0;
    await this.flush();
    const rawLength = Math.ceil(this.length / 8);
    return this.out.length < rawLength
      ? { encoding: ENCODING_RLE, payloadLength: this.out.length }
      : { encoding: ENCODING_RAW, payloadLength: rawLength };
  }
}

/** Bits per piece when expanding runs to raw bytes. */
const RAW_PIECE_BITS = 8 << 20;

/** The raw encoding of a bitmap given by its (valid, written-by-us) run-length bytes. */
export async function* rleToRaw(
  rle: AsyncIterable<Uint8Array>,
  length: number,
): AsyncGenerator<Uint8Array> {
  let pieceStart = 0;
  let piece = new Bitmap(Math.min(RAW_PIECE_BITS, length));
  let pos = 0;
  let set = false;
  let value = 0;
  let scale = 1;
  const emitUpTo = function* (end: number): Generator<Uint8Array> {
    while (end >= pieceStart + piece.length && piece.length > 0) {
      yield piece.toBytes();
      pieceStart += piece.length;
      piece = new Bitmap(Math.min(RAW_PIECE_BITS, length - pieceStart));
    }
  };
  for await (const chunk of rle) {
    for (const b of chunk) {
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) !== 0) continue;
      let at = pos;
      const end = pos + value;
      while (set && at < end) {
        const inPiece = Math.min(end, pieceStart + piece.length) - at;
        piece.setRange(at - pieceStart, inPiece);
        at += inPiece;
        if (at === pieceStart + piece.length) yield* emitUpTo(at);
      }
      pos = end;
      yield* emitUpTo(pos);
      set = !set;
      value = 0;
      scale = 1;
    }
  }
  if (pieceStart < length) yield piece.toBytes();
}

/** Reads a bitmap section's payload window by window, from a file, never all of it at once. */
export class BitmapSection {
  /** RLE decoding state at the start of each window (recorded by the sequential pass). */
  private readonly cpAt: Float64Array;
  private readonly cpRemaining: Float64Array;
  private readonly cpSet: Uint8Array;
  // Sequential pass state.
  private at = 0;
  private pos = 0;
  private remaining = 0;
  private set = true; // the kind of the run in progress; the first run read is a clear run
  private first = true;
  private nextWindow = 0;

  constructor(
    private readonly file: BlockSource,
    readonly structure: string,
    /** File offset of the payload. */
    private readonly base: number,
    private readonly payloadLength: number,
    readonly encoding: number,
    readonly length: number,
    readonly windowBits: number,
  ) {
    const windows = Math.ceil(length / windowBits);
    const r = new FieldReader<FormatReason>(new Uint8Array(0), structure, base);
    if (encoding === ENCODING_RAW) {
      const need = Math.ceil(length / 8);
      if (payloadLength !== need)
        throw r.corrupt(
          `${structure} has ${payloadLength} bytes, expected ${need}`,
          0,
          'length-mismatch',
        );
    } else if (encoding !== ENCODING_RLE) {
      throw r.corrupt(`${structure} has unknown encoding ${encoding}`, -16 + 4, 'bad-encoding');
    }
    const cps = encoding === ENCODING_RLE ? windows : 0;
    this.cpAt = new Float64Array(cps);
    this.cpRemaining = new Float64Array(cps);
    this.cpSet = new Uint8Array(cps);
  }

  private corrupt(message: string, at: number, reason: FormatReason): CorruptError {
    return new CorruptError(message, {
      structure: this.structure,
      offset: this.base + at,
      reason,
    });
  }

  private windowLength(w: number): number {
    return Math.min(this.windowBits, this.length - w * this.windowBits);
  }

  /** The next window of the sequential pass that checks the whole section (call in order). */
  async next(): Promise<Bitmap> {
    const w = this.nextWindow++;
    const len = this.windowLength(w);
    if (this.encoding === ENCODING_RAW) {
      const bits = await this.rawWindow(w);
      if (w * this.windowBits + len === this.length) {
        const need = Math.ceil(this.length / 8);
        const spare = need * 8 - this.length;
        if (spare > 0) {
          const last = new Uint8Array(1);
          await this.file.read(this.base + need - 1, last);
          if (last[0]! >> (8 - spare) !== 0)
            throw this.corrupt(`${this.structure} has padding bits set`, need - 1, 'padding');
        }
      }
      return bits;
    }
    this.cpAt[w] = this.at;
    this.cpRemaining[w] = this.remaining;
    this.cpSet[w] = this.set ? 1 : 0;
    const stream = new ByteStream(this.file, this.base, this.payloadLength, this.at);
    const bits = new Bitmap(len);
    let filled = 0;
    while (filled < len) {
      if (this.remaining === 0) {
        const runAt = stream.at;
        if (runAt >= this.payloadLength)
          throw this.corrupt(
            `${this.structure} runs cover ${this.pos} of ${this.length} bits`,
            this.payloadLength,
            'bad-run',
          );
        const value = await this.varint(stream);
        if (value === 0 && !this.first)
          throw this.corrupt(`${this.structure} has an empty run`, runAt, 'bad-run');
        if (value > this.length - this.pos)
          throw this.corrupt(`${this.structure} runs exceed ${this.length} bits`, runAt, 'bad-run');
        this.first = false;
        this.set = !this.set;
        this.remaining = value;
        continue;
      }
      const take = Math.min(this.remaining, len - filled);
      if (this.set) bits.setRange(filled, take);
      filled += take;
      this.pos += take;
      this.remaining -= take;
    }
    this.at = stream.at;
    if (this.pos === this.length) {
      // Past the last bit: only zero-length runs would be left, and they are not allowed.
      while (this.remaining === 0 && stream.at < this.payloadLength) {
        const runAt = stream.at;
        const value = await this.varint(stream);
        if (value === 0 && !this.first)
          throw this.corrupt(`${this.structure} has an empty run`, runAt, 'bad-run');
        if (value > 0)
          throw this.corrupt(`${this.structure} runs exceed ${this.length} bits`, runAt, 'bad-run');
        this.first = false;
        this.set = !this.set;
      }
    }
    return bits;
  }

  private varint(stream: ByteStream): Promise<number> {
    return stream.varint((cut, at) =>
      !cut
        ? this.corrupt(`${this.structure} has an over-long run length`, at, 'bad-varint')
        : this.corrupt(`${this.structure} ends inside a run length`, at, 'truncated'),
    );
  }

  private async rawWindow(w: number): Promise<Bitmap> {
    const len = this.windowLength(w);
    const bytes = new Uint8Array(Math.ceil(len / 8));
    await this.file.read(this.base + (w * this.windowBits) / 8, bytes);
    return Bitmap.fromBytes(bytes, len);
  }

  /** Window `w` (after the sequential pass has checked the section). */
  async window(w: number): Promise<Bitmap> {
    if (this.encoding === ENCODING_RAW) return this.rawWindow(w);
    const len = this.windowLength(w);
    const stream = new ByteStream(this.file, this.base, this.payloadLength, this.cpAt[w]!);
    let remaining = this.cpRemaining[w]!;
    let set = this.cpSet[w] === 1;
    const bits = new Bitmap(len);
    let filled = 0;
    while (filled < len) {
      if (remaining === 0) {
        remaining = await this.varint(stream);
        set = !set;
        continue;
      }
      const take = Math.min(remaining, len - filled);
      if (set) bits.setRange(filled, take);
      filled += take;
      remaining -= take;
    }
    return bits;
  }
}

/** Bytes read from the file at once while decoding runs. */
const STREAM_CHUNK = 64 << 10;

/** Sequential bytes of a payload at `base` in a file, read in chunks. */
export class ByteStream {
  private buf = new Uint8Array(0);
  private bufAt = 0;
  constructor(
    private readonly file: BlockSource,
    private readonly base: number,
    private readonly end: number,
    /** Payload offset of the next byte. */
    public at: number,
  ) {
    this.bufAt = at;
  }
  /** Bytes buffered from `at` on. */
  available(): number {
    return this.bufAt + this.buf.length - this.at;
  }
  /** Buffer the next chunk from `at` (up to the payload's end). */
  async fill(): Promise<void> {
    const n = Math.max(0, Math.min(STREAM_CHUNK, this.end - this.at));
    if (this.bufAt + this.buf.length >= this.at + n) return;
    this.buf = new Uint8Array(n);
    this.bufAt = this.at;
    await this.file.read(this.base + this.at, this.buf);
  }
  /** The next byte; the caller checked `at < end` and filled. */
  u8(): number {
    return this.buf[this.at++ - this.bufAt]!;
  }
  /**
   * The next unsigned LEB128 value (SPEC.md §2), at most `MAX_VARINT_BYTES` long; `fail` makes the
   * error for a value cut off by the payload's end (`cut`) or an over-long one (at its first byte).
   */
  async varint(fail: (cut: boolean, at: number) => Error): Promise<number> {
    if (this.available() < MAX_VARINT_BYTES) await this.fill();
    const first = this.at;
    let value = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k >= MAX_VARINT_BYTES) throw fail(false, first);
      if (this.at >= this.end) throw fail(true, this.at);
      const b = this.u8();
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) return value;
    }
  }
}

import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, CorruptError } from '@diskube/core';
import { ByteStream, MAX_VARINT_BYTES, pushVarint } from './bitmap-codec.js';
import { DIGEST_LENGTH } from './header.js';
import type { FormatReason } from './reasons.js';
import { SECTION_NAMES } from './section.js';

// Sources: SPEC.md §6.8 "REPT: repeated blocks" (format 2.2). The payload lists the repeated
// blocks `R` in ascending order, two LEB128 values each: the gap since the previous repeated block
// (block − previous − 1; the first: its block number) and the ordinal of the stored block (§5)
// whose bytes it repeats, which comes earlier in the file.

const STRUCTURE = SECTION_NAMES.REPT;
const FLUSH_BYTES = 64 << 10;

/** Builds a REPT payload, entry by entry in ascending block order, into `out`. */
export class RepeatEncoder {
  private previous = -1;
  private pending: number[] = [];
  count = 0;
  constructor(private readonly out: { push(bytes: Uint8Array): Promise<void>; length: number }) {}

  /** Add the next entry (ascending blocks); `drain` hands the bytes on. */
  add(block: number, target: number): void {
    pushVarint(this.pending, block - this.previous - 1);
    pushVarint(this.pending, target);
    this.previous = block;
    this.count++;
  }

  /** Hand pending bytes to `out` once there are enough of them. */
  async drain(): Promise<void> {
    if (this.pending.length >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bytes = Uint8Array.from(this.pending);
    this.pending = [];
    await this.out.push(bytes);
  }

  /** The payload's length once everything is pushed. */
  async finish(): Promise<number> {
    await this.flush();
    return this.out.length;
  }
}

/** Slots a `BlockIndex` holds at most: 24 MiB, about 4 GiB of distinct 4 KiB blocks. */
export const BLOCK_INDEX_MAX_SLOTS = 1 << 20;
const PROBES = 8;

/**
 * Where each distinct stored block went: digest → ordinal, in a fixed-size open-addressing table
 * (24 bytes a slot, at most `BLOCK_INDEX_MAX_SLOTS`), so memory does not grow with the disk.
 * When the probes of a digest find no free slot, the oldest of them is replaced: a block whose
 * entry was dropped is simply stored again.
 */
export class BlockIndex {
  private readonly keys: Uint8Array;
  private readonly ordinals: Float64Array;
  private readonly mask: number;

  /** `expected`: how many blocks may be added (sizes the table, up to the cap). */
  constructor(expected: number) {
    let slots = 1024;
    while (slots < 2 * expected && slots < BLOCK_INDEX_MAX_SLOTS) slots *= 2;
    this.keys = new Uint8Array(slots * DIGEST_LENGTH);
    this.ordinals = new Float64Array(slots).fill(-1);
    this.mask = slots - 1;
  }

  private home(d: Uint8Array): number {
    return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) & this.mask;
  }

  private matches(slot: number, d: Uint8Array): boolean {
    const at = slot * DIGEST_LENGTH;
    for (let k = 0; k < DIGEST_LENGTH; k++) if (this.keys[at + k] !== d[k]) return false;
    return true;
  }

  /** The ordinal of the stored block with digest `d`, or -1. */
  find(d: Uint8Array): number {
    const home = this.home(d);
    for (let p = 0; p < PROBES; p++) {
      const slot = (home + p) & this.mask;
      const o = this.ordinals[slot]!;
      if (o < 0) return -1;
      if (this.matches(slot, d)) return o;
    }
    return -1;
  }

  /** Record that the block with digest `d` is stored with ordinal `ordinal`. */
  add(d: Uint8Array, ordinal: number): void {
    const home = this.home(d);
    let oldest = home;
    for (let p = 0; p < PROBES; p++) {
      const slot = (home + p) & this.mask;
      if (this.ordinals[slot]! < 0) {
        oldest = slot;
        break;
      }
      if (this.ordinals[slot]! < this.ordinals[oldest]!) oldest = slot;
    }
    this.keys.set(d.subarray(0, DIGEST_LENGTH), oldest * DIGEST_LENGTH);
    this.ordinals[oldest] = ordinal;
  }
}

/** The repeated blocks of one window: bit `j` is block `start + j`; one target per set bit. */
export interface RepeatWindow {
  bits: Bitmap;
  /** Ordinal of the stored block each repeated block repeats, in block order. */
  targets: Float64Array;
}

/**
 * Reads a REPT payload window by window. A sequential pass (`next`, when the backup is opened)
 * checks every entry against the window's held blocks and records where each window's entries
 * begin; `window` then decodes any window again.
 */
export class RepeatSection {
  /** Payload offset and previous repeated block at the start of each window. */
  private readonly windowAt: Float64Array;
  private readonly windowPrevious: Float64Array;
  private readonly stream: ByteStream;
  private previous = -1;
  /** An entry decoded past the end of the window being read: it starts the next one. */
  private carry: { at: number; previous: number; block: number; target: number } | null = null;
  private nextWindow = 0;

  constructor(
    private readonly file: BlockSource,
    /** File offset of the payload. */
    private readonly base: number,
    private readonly payloadLength: number,
    readonly length: number,
    readonly windowBits: number,
  ) {
    const windows = Math.ceil(length / windowBits);
    this.windowAt = new Float64Array(windows);
    this.windowPrevious = new Float64Array(windows);
    this.stream = new ByteStream(file, base, payloadLength, 0);
  }

  private corrupt(message: string, at: number, reason: FormatReason): CorruptError {
    return new CorruptError(message, { structure: STRUCTURE, offset: this.base + at, reason });
  }

  private async varint(stream: ByteStream): Promise<number> {
    if (stream.available() < MAX_VARINT_BYTES) await stream.fill();
    const at = stream.at;
    let value = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k >= MAX_VARINT_BYTES)
        throw this.corrupt(`${STRUCTURE} has an over-long number`, at, 'bad-varint');
      if (stream.at >= this.payloadLength)
        throw this.corrupt(`${STRUCTURE} ends inside an entry`, stream.at, 'truncated');
      const b = stream.u8();
      value += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) return value;
    }
  }

  /**
   * The next window of the sequential pass (call in order). `held`: the window's blocks with
   * content in this file (`U ∖ Z`, and `∩ C` for an incremental); `framedBefore`: stored blocks
   * (§5 ordinals) before the window. Every entry must name a held block whose target is a block
   * stored before it.
   */
  async next(held: Bitmap, framedBefore: number): Promise<RepeatWindow> {
    const w = this.nextWindow++;
    const start = w * this.windowBits;
    const end = start + held.length;
    const bits = new Bitmap(held.length);
    const targets: number[] = [];
    this.windowAt[w] = this.carry?.at ?? this.stream.at;
    this.windowPrevious[w] = this.carry?.previous ?? this.previous;
    let heldBlock = 0;
    let heldRank = 0;
    for (;;) {
      let entry = this.carry;
      this.carry = null;
      if (entry === null) {
        if (this.stream.at >= this.payloadLength) break;
        const at = this.stream.at;
        const previous = this.previous;
        const gap = await this.varint(this.stream);
        const block = previous + 1 + gap;
        if (block >= this.length)
          throw this.corrupt(
            `${STRUCTURE} names block ${block} of ${this.length}`,
            at,
            'out-of-range',
          );
        const target = await this.varint(this.stream);
        this.previous = block;
        entry = { at, previous, block, target };
      }
      if (entry.block >= end) {
        this.carry = entry;
        break;
      }
      const j = entry.block - start;
      if (!held.get(j))
        throw this.corrupt(
          `${STRUCTURE} names block ${entry.block}, which this backup does not hold`,
          entry.at,
          'inconsistent',
        );
      heldRank += held.countRange(heldBlock, j - heldBlock);
      heldBlock = j;
      // Stored blocks before this one: held ones before it, less the repeats among them.
      const storedBefore = framedBefore + heldRank - targets.length;
      if (entry.target >= storedBefore)
        throw this.corrupt(
          `${STRUCTURE}: block ${entry.block} repeats stored block ${entry.target}, which does not come before it`,
          entry.at,
          'bad-offset',
        );
      bits.set(j);
      targets.push(entry.target);
    }
    return { bits, targets: Float64Array.from(targets) };
  }

  /** After the last window of the sequential pass: nothing may be left over. */
  finish(): void {
    if (this.carry !== null || this.stream.at < this.payloadLength)
      throw this.corrupt(
        `${STRUCTURE} has bytes after its last entry`,
        this.carry?.at ?? this.stream.at,
        'length-mismatch',
      );
  }

  /** Window `w` (after the sequential pass has checked the section). */
  async window(w: number): Promise<RepeatWindow> {
    const start = w * this.windowBits;
    const len = Math.min(this.windowBits, this.length - start);
    const stream = new ByteStream(this.file, this.base, this.payloadLength, this.windowAt[w]!);
    let previous = this.windowPrevious[w]!;
    const bits = new Bitmap(len);
    const targets: number[] = [];
    while (stream.at < this.payloadLength) {
      const block = previous + 1 + (await this.varint(stream));
      if (block >= start + len) break;
      targets.push(await this.varint(stream));
      bits.set(block - start);
      previous = block;
    }
    return { bits, targets: Float64Array.from(targets) };
  }
}
